"""Reading the items of an area onto one block of its grid, and sampling each item once at plan time.

Items already on the area's grid (the tiles of its UTM zone, by their ``proj:transform``) with
nearest resampling are read by plain windowed reads (:func:`on_grid`,
:func:`senclip.acquire.chips.read_window`): the same values as odc-stac's nearest resampling,
measured twice as fast as its warp of 20 m bands (``docs/areas.md``). The others (another UTM
zone, another resampling) go through odc-stac (``odc.stac.load``: the grid given as a ``GeoBox``).
Every file of the windowed reads is retried on its own; the odc-stac items of a block are read in
one call, and after a failure each item alone with its retries: one failing file does not make the
block read all the others again and again. Hrefs are signed (Planetary Computer) here, right before the
block reads them.

:func:`check_radiometry` checks, before any block runs, each item's BOA offset against its
values (:func:`senclip.acquire.radiometry.check_data` on a decimated read of the whole item, from
its overviews): the decision is the item's, the same in every block, on every worker and on a
rerun, whatever the area.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from senclip.acquire.area import AreaGrid, Block
from senclip.acquire.area_items import CompositeSpec, SceneRef
from senclip.acquire.chips import Grid, read_window
from senclip.acquire.radiometry import check_data, warn
from senclip.acquire.stac import href_signer
from senclip.net import RemoteError, RetryPolicy, gdal_env, retry_call

SAMPLE_SIDE = 256
"""Longest side, in pixels, of the decimated read of each band of an item that checks its offset."""


def _by_position(item, parsed, idx: int) -> int:
    """odc-stac groupby: every item its own time step, in the order given."""
    return idx


def _geobox(grid: AreaGrid, block: Block):
    from odc.geo.geobox import GeoBox

    return GeoBox((block.height, block.width), grid.window_transform(block), f"EPSG:{grid.epsg}")


def configure_gdal(policy: RetryPolicy) -> None:
    """GDAL settings of odc-stac's reading threads: :func:`senclip.net.gdal_env` (no retries inside GDAL)."""
    import odc.stac

    odc.stac.configure_rio(**gdal_env(policy))


def signed(scene: SceneRef, sign: Callable[[str], str] | None) -> dict:
    """The item of ``scene`` with its asset hrefs signed by ``sign`` (a copy; ``None``: as it is)."""
    if sign is None:
        return scene.item
    assets = {k: a | {"href": sign(a["href"])} for k, a in scene.item["assets"].items()}
    return scene.item | {"assets": assets}


def load_scenes(
    scenes: list[SceneRef],
    grid: AreaGrid,
    block: Block,
    spec: CompositeSpec,
    policy: RetryPolicy,
    signer: str = "none",
) -> tuple[np.ndarray, np.ndarray]:
    """Raw values ``(T, C, h, w)`` uint16 and SCL ``(T, h, w)`` uint8 (0 for items without SCL) on the block.

    Hrefs are signed with ``signer`` (:func:`senclip.acquire.stac.href_signer`) now, right before
    reading. Each file (or odc-stac item) retries transient failures (a 5xx, a timeout) with
    ``policy`` on its own; :class:`~senclip.net.RemoteError` after its last try.
    """
    t, c = len(scenes), len(spec.bands)
    data = np.zeros((t, c, block.height, block.width), dtype=np.uint16)
    scl = np.zeros((t, block.height, block.width), dtype=np.uint8)
    if not t:
        return data, scl
    sign = href_signer(signer)
    items = [signed(s, sign) for s in scenes]
    direct = [i for i, s in enumerate(scenes) if spec.resampling == "nearest" and on_grid(s, grid)]
    if direct:
        _read_direct([items[i] for i in direct], direct, grid, block, spec, policy, data, scl)
    for with_scl in (True, False):
        rows = [i for i, s in enumerate(scenes) if s.has_scl == with_scl and i not in direct]
        if not rows:
            continue
        once = replace(policy, attempts=1)
        try:  # all of them in one call, the fast way; after a failure each item alone, with its retries
            _load_odc([items[i] for i in rows], rows, with_scl, grid, block, spec, once, data, scl)
        except RemoteError:
            for i in rows:
                _load_odc([items[i]], [i], with_scl, grid, block, spec, policy, data, scl)
    return data, scl


def _load_odc(items: list[dict], rows: list[int], with_scl: bool, grid: AreaGrid, block: Block,
              spec: CompositeSpec, policy: RetryPolicy, data: np.ndarray, scl: np.ndarray) -> None:
    """Items onto the block with odc-stac (reprojected, resampled), into ``data[rows]``/``scl[rows]``."""
    import odc.stac
    import pystac

    bands = [*spec.bands, "SCL"] if with_scl else list(spec.bands)
    resampling = {b: spec.resampling for b in spec.bands} | {"SCL": "nearest"}
    stac_items = [pystac.Item.from_dict(item, preserve_dict=True) for item in items]

    def _load(attempt: int):
        with warnings.catch_warnings():  # odc-stac warps into bare arrays: GDAL's note on it is noise
            warnings.filterwarnings("ignore", message="Dataset has no geotransform", module="rasterio")
            return odc.stac.load(stac_items, bands=bands, geobox=_geobox(grid, block), groupby=_by_position,
                                 resampling={b: resampling[b] for b in bands}, fail_on_error=True,
                                 pool=spec.threads if spec.threads > 1 else None)

    names = ", ".join(item["id"] for item in items[:2]) + (", …" if len(items) > 2 else "")
    ds = retry_call(_load, policy, what=f"reading block {block.name} of {names}")
    for j, band in enumerate(spec.bands):
        data[rows, j] = ds[band].values
    if with_scl:
        scl[rows] = ds["SCL"].values


def on_grid(scene: SceneRef, grid: AreaGrid) -> bool:
    """Whether every asset of ``scene`` states a grid (``proj:transform``) in the area's CRS whose pixel
    edges fall on the area grid's pixel edges (Sentinel-2 tiles of the area's UTM zone): then each output
    pixel lies in one source pixel and a windowed read gives what odc-stac's nearest resampling gives."""
    props = scene.item["properties"]
    code = props.get("proj:code") or (f"EPSG:{props['proj:epsg']}" if props.get("proj:epsg") else None)
    for asset in scene.item["assets"].values():
        acode = asset.get("proj:code") or (f"EPSG:{asset['proj:epsg']}" if asset.get("proj:epsg") else code)
        t = asset.get("proj:transform")
        if acode != f"EPSG:{grid.epsg}" or not t or t[1] or t[3] or t[0] <= 0 or t[4] != -t[0]:
            return False
        r = grid.resolution  # every source pixel edge on an output pixel edge: each output pixel in one
        if t[0] % r or (t[2] - grid.x0) % r or (grid.y1 - t[5]) % r:  # source pixel
            return False
    return True


def _read_direct(items: list[dict], idx: list[int], grid: AreaGrid, block: Block, spec: CompositeSpec,
                 policy: RetryPolicy, data: np.ndarray, scl: np.ndarray) -> None:
    """Windowed reads of items on the area's grid (:func:`on_grid`) into ``data``/``scl``, ``spec.threads``
    files at once, each file retried on its own (:func:`senclip.acquire.chips.read_window`)."""
    from concurrent.futures import ThreadPoolExecutor

    window = Grid(grid.crs, grid.window_transform(block), block.width, block.height)

    def read(job):
        row, band, href = job
        values = read_window(href, window, policy)
        if band == "SCL":
            scl[row] = values
        else:
            data[row, spec.bands.index(band)] = values

    jobs = [(row, band, item["assets"][band]["href"])
            for row, item in zip(idx, items, strict=True) for band in (*spec.bands, "SCL")
            if band in item["assets"]]
    with ThreadPoolExecutor(max(1, spec.threads)) as pool:
        list(pool.map(read, jobs))


def _sample(href: str, policy: RetryPolicy, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Band 1 of ``href``, the whole file read into ``shape`` (default: at most :data:`SAMPLE_SIDE` pixels a
    side, the file's aspect kept); GDAL reads it from the file's overviews where it has them."""
    import rasterio

    def _read(attempt: int) -> np.ndarray:
        env = gdal_env(policy, retry_of=href if attempt > 1 else None)
        with rasterio.Env(**env), rasterio.open(href) as src:
            step = max(1, -(-max(src.width, src.height) // SAMPLE_SIDE))
            return src.read(1, out_shape=shape or (-(-src.height // step), -(-src.width // step)))

    return retry_call(_read, policy, what=f"sampling {href.split('?', 1)[0]}")


def check_radiometry(scenes: list[SceneRef], spec: CompositeSpec, policy: RetryPolicy,
                     signer: str = "none") -> list[SceneRef]:
    """Each item's BOA offset checked against its own values, once, before any block runs.

    An item whose decided offset is 0 needs no check. For the others every band is read whole,
    decimated to :data:`SAMPLE_SIDE` pixels a side (from its overviews), and
    :func:`~senclip.acquire.radiometry.check_data` may drop the offset (``check:
    "offset-not-in-data"``, warned once). An item that cannot be read after the retries is marked
    ``unread``: the blocks it reaches fail and a rerun tries again. The result depends on the item
    alone, so every block,
    worker and rerun applies the same decision (checking each block's values instead split an
    item into blocks with and without the offset removed, a seam).
    """
    from concurrent.futures import ThreadPoolExecutor

    sign = href_signer(signer)
    todo = [s for s in scenes if any(v > 0 for v in s.offset_dn.values())]

    def sample(scene: SceneRef) -> np.ndarray:
        """Every band of the item on one decimated grid (the first band's; all cover the item's tile)."""
        hrefs = [signed(scene, sign)["assets"][b]["href"] for b in spec.bands]
        first = _sample(hrefs[0], policy)
        with ThreadPoolExecutor(max(1, min(spec.threads, len(hrefs)))) as pool:
            rest = list(pool.map(lambda h: _sample(h, policy, first.shape), hrefs[1:]))
        return np.stack([first, *rest])

    checked = {}
    for scene in todo:
        try:
            values = sample(scene)
        except RemoteError as exc:  # the blocks this item reaches fail, the others go on
            checked[scene.id] = replace(scene, unread=str(exc).splitlines()[0])
            continue
        decision = check_data(values, scene.decision(), spec.bands)
        if decision.check:
            warn(scene.id, decision)
            checked[scene.id] = replace(scene, offset_dn=dict(decision.offset_dn), check=decision.check)
    return [checked.get(s.id, s) for s in scenes]


__all__ = ["SAMPLE_SIDE", "check_radiometry", "configure_gdal", "load_scenes", "on_grid", "signed"]
