"""Satellite chips paired with their cached ground-view embeddings.

:class:`PairedDataset` reads the chip of each manifest row and looks its
ground embeddings up in a :class:`~senclip.data.ground_cache.GroundCache`;
photos are never encoded here. Chips are scaled the way
``senclip.data.get_dataset``'s default transforms scale images:

* RGB JPEG/PNG (or an 8-bit 3-band GeoTIFF): ``value / 255``;
* GeoTIFF with band descriptions (``B02``, ``B04``, …): the requested
  ``bands`` are selected by name, then :func:`~senclip.data.transforms.true_colour`
  for RGB bands or ``ScaleReflectance(1e-4)`` for any other band set. A
  GeoTIFF without descriptions must have exactly ``len(bands)`` bands, taken
  to be ``bands`` in order, unless the manifest's ``sat_bands`` column names
  its bands in file order (an 8-bit chip is then reordered and divided by 255).
* A GeoTIFF with GDAL per-band scale/offset (what ``senclip acquire`` writes;
  raw L2A digital numbers with ``offset=-0.1``) is first put in harmonised
  digital numbers, ``(value * scale + offset) * 10000``
  (:mod:`senclip.data.radiometry`), so raw and harmonised chips of one scene
  give the same image; pixels ≤ 0 after that, NaN or nodata become 0.

``transforms`` (optional, dict → dict) run after this scaling, e.g. augmentations.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from senclip.bands import RGB_BANDS as RGB
from senclip.data.ground_cache import GroundCache, ground_norm
from senclip.data.manifest import require_paths
from senclip.data.radiometry import file_scaling, invalid_values, to_dn_units
from senclip.data.transforms import ScaleReflectance, SelectBands, ToFloat, true_colour
from senclip.errors import SenclipError


def _read_tiff(path: str, bands: tuple[str, ...], file_bands: tuple[str, ...] = ()) -> dict:
    import warnings

    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    with warnings.catch_warnings():  # chips need no georeferencing to be read
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path) as src:
            data = src.read()
            names = tuple(d.strip() if d else "" for d in src.descriptions)
            scaling, nodata = file_scaling(src), src.nodata
    if scaling is not None:  # GDAL scale/offset (e.g. raw L2A DN, offset -0.1): to harmonised DN units
        values = to_dn_units(data, *scaling)
        values[:, invalid_values(values, data, nodata)] = 0.0  # masked pixels read as nodata (0)
        data = values
    image = torch.from_numpy(data.astype(np.float32))
    if file_bands and not any(names):  # the manifest's sat_bands name the file's bands
        if len(file_bands) != data.shape[0]:
            raise SenclipError(f"{path}: chip has {data.shape[0]} bands but sat_bands names "
                               f"{len(file_bands)} ({','.join(file_bands)})")
        names = tuple(file_bands)
        if data.dtype == np.uint8:
            try:
                return ToFloat()(SelectBands(bands)({"image": image, "bands": names}))
            except KeyError as exc:
                raise SenclipError(f"{path}: chip bands {list(names)} lack some of {list(bands)}") from exc
    if data.dtype == np.uint8 and data.shape[0] == 3 and not any(names):
        if bands != RGB:
            raise SenclipError(f"{path}: 8-bit chip without band names can only feed an RGB tower")
        return ToFloat()({"image": image, "bands": RGB})
    if not any(names):
        if data.shape[0] != len(bands):
            raise SenclipError(f"{path}: chip has {data.shape[0]} unnamed bands but the tower expects "
                               f"{len(bands)} ({','.join(bands)}); write band descriptions into the GeoTIFF")
        names = bands
    sample = {"image": image, "bands": names}
    try:
        if tuple(bands) == RGB:
            return true_colour()(sample)
        return ScaleReflectance(1e-4)(SelectBands(bands)(sample))
    except KeyError as exc:
        raise SenclipError(f"{path}: chip bands {list(names)} lack some of {list(bands)}") from exc


def read_chip(path: str, bands: Sequence[str] = RGB, file_bands: Sequence[str] = ()) -> dict:
    """A chip as ``{"image": float32 (C, H, W), "bands": names}``, scaled for a tower with ``bands``.

    ``file_bands`` names the bands of a GeoTIFF without band descriptions, in file order (the
    manifest's ``sat_bands``); an 8-bit chip is then reordered by name and divided by 255.
    """
    bands = tuple(bands)
    if Path(path).suffix.lower() in (".tif", ".tiff"):
        try:
            return _read_tiff(path, bands, tuple(file_bands))
        except SenclipError:
            raise
        except Exception as exc:  # rasterio raises several error types
            raise SenclipError(f"unreadable chip {path} ({type(exc).__name__})") from exc
    if bands != RGB:
        raise SenclipError(f"{path}: JPEG/PNG chips are RGB but the tower expects {','.join(bands)}")
    from torchvision.io import ImageReadMode, decode_image, read_file

    try:  # the decoder senclip.data.EuroSAT uses, so proxy training and zero-shot see equal pixels
        image = decode_image(read_file(path), mode=ImageReadMode.RGB)
    except (RuntimeError, OSError, ValueError) as exc:
        raise SenclipError(f"unreadable chip {path} ({type(exc).__name__}); fix or remove it") from exc
    return ToFloat()({"image": image, "bands": RGB})


class PairedDataset(Dataset):
    """Chips of a manifest with their ground-view embeddings from a cache.

    Args:
        manifest_df: from :func:`senclip.data.manifest.read_manifest`.
        cache: holds every ``point_id`` of the manifest (it may hold more).
        transforms: dict → dict, applied after the chip scaling.
        bands: input bands of the satellite tower.

    Samples: ``image`` float32 (C, H, W), ``ground`` float32 (V, D),
    ``ground_mask`` bool (V,), ``point_id`` str, ``label`` int64 (``-1`` when
    the manifest has no ``label`` column or the value is empty), ``path`` str;
    ``ground_norm`` float32 (V,) when the cache keeps the views' norms.
    """

    def __init__(self, manifest_df: pd.DataFrame, cache: GroundCache,
                 transforms: Callable[[dict], dict] | None = None,
                 bands: Sequence[str] = RGB) -> None:
        require_paths(manifest_df, "sat_path", "have no sat_path chip; an image tower trains on chips "
                      "(series_path rows need model.tower timesen)")
        self.point_ids = [str(p) for p in manifest_df["point_id"]]
        self.paths = [str(p) for p in manifest_df["sat_path"]]
        self.rows = cache.rows(self.point_ids)
        self.cache = cache
        self.transforms = transforms
        self.bands = tuple(bands)
        self.file_bands = [() if not isinstance(v, str) or not v.strip() else
                           tuple(b.strip() for b in v.split(",")) for v in
                           (manifest_df["sat_bands"] if "sat_bands" in manifest_df.columns
                            else [None] * len(self.paths))]
        if "label" in manifest_df.columns:
            labels = pd.to_numeric(manifest_df["label"], errors="coerce").fillna(-1)
            self.labels = labels.to_numpy(dtype=np.int64)
        else:
            self.labels = np.full(len(self.point_ids), -1, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.point_ids)

    def __getitem__(self, i: int) -> dict:
        chip = read_chip(self.paths[i], self.bands, self.file_bands[i])
        row = self.rows[i]
        sample = {
            "image": chip["image"],
            "bands": chip["bands"],
            "ground": torch.from_numpy(np.array(self.cache.embeddings[row], dtype=np.float32)),
            "ground_mask": torch.from_numpy(np.array(self.cache.mask[row], dtype=bool)),
            **ground_norm(self.cache, row),
            "point_id": self.point_ids[i],
            "label": torch.tensor(self.labels[i], dtype=torch.int64),
            "path": self.paths[i],
        }
        return self.transforms(sample) if self.transforms is not None else sample
