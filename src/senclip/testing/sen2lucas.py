"""Small files in the published Sen2LUCAS + frozen-embeddings layouts, for tests and examples.

* chips: ``ROOT/<CC>/<pointid>_<date>.tif``, 100 x 100, 3 bands uint16 in file
  order B02, B03, B04, no band descriptions, georeferenced in ETRS89-LAEA
  (EPSG:3035) around real European locations;
* the paths list: ``ROOT/paths.txt``, one relative chip path a line;
* the embeddings: ``ROOT/embeddings.pt``, ``torch.save`` of a dict keyed
  ``{CC}_{pointid}{N|E|S|W}``, each value a ``(1, dim)`` float tensor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# (country code, LAEA x, y in metres) of a few places in Europe
_PLACES = [("DE", 4_432_000, 2_779_000), ("FR", 3_763_000, 2_889_000), ("AT", 4_787_000, 2_690_000),
           ("ES", 3_159_000, 2_031_000), ("PL", 5_073_000, 3_224_000), ("IT", 4_521_000, 2_059_000)]


@dataclass
class Sen2LucasFiles:
    chips: Path
    paths: Path
    embeddings: Path
    point_ids: list[str]                      # "{CC}_{pointid}" in list order
    vectors: dict = field(default_factory=dict)  # the saved tensors, by key


def write_sen2lucas(root: str | Path, n: int = 12, dim: int = 128, seed: int = 0,
                    rgb: list[np.ndarray] | None = None, georeferenced: bool = True) -> Sen2LucasFiles:
    """Write ``n`` chips, their paths list and a frozen-embeddings ``.pt`` under ``root``.

    ``rgb`` (optional): ``(H, W, 3)`` uint8 images whose red, green and blue become
    B04, B03, B02 (nearest-neighbour resized to 100 x 100, scaled x20 to reflectance-like values);
    default: seeded noise. ``georeferenced=False`` writes chips without CRS and transform.
    """
    import warnings

    import rasterio
    import torch
    from rasterio.errors import NotGeoreferencedWarning
    from rasterio.transform import from_origin

    root = Path(root)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    lines, ids, vectors = [], [], {}
    for i in range(n):
        cc, x, y = _PLACES[i % len(_PLACES)]
        pid = str(40_000_000 + 10_001 * i)
        rel = f"{cc}/{pid}_2018-06-{1 + i % 28:02d}.tif"
        if rgb is not None:
            img = rgb[i % len(rgb)].astype(np.uint16) * 20
            h, w = img.shape[:2]
            img = img[(np.arange(100) * h) // 100][:, (np.arange(100) * w) // 100]  # nearest, to 100x100
            data = img.transpose(2, 0, 1)[::-1].copy()  # R,G,B -> B02,B03,B04 (blue first)
        else:
            data = rng.integers(0, 3000, size=(3, 100, 100), dtype=np.uint16)
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        geo = {"crs": "EPSG:3035", "transform": from_origin(x + 2000 * i, y + 1000 * i, 10.0, 10.0)}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path, "w", driver="GTiff", width=100, height=100, count=3, dtype="uint16",
                               **(geo if georeferenced else {})) as dst:
                dst.write(data)
        lines.append(rel)
        ids.append(f"{cc}_{pid}")
        for v in "NESW":
            vectors[f"{cc}_{pid}{v}"] = torch.randn(1, dim, generator=gen) * 3.0
    paths = root / "paths.txt"
    paths.write_text("\n".join(lines) + "\n")
    emb = root / "embeddings.pt"
    torch.save(vectors, emb)
    return Sen2LucasFiles(root, paths, emb, ids, vectors)
