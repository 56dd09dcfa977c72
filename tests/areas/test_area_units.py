"""The area pipeline's rules one at a time, on files and folders the test writes (no STAC server).

Radiometry decided once per item (not per block), each file retried alone, hrefs signed by the
block that reads them, valid dark pixels, the southern-hemisphere grid, work folders senclip did
not make, resume identities that ignore run-only flags, the Dask job sent once per worker.
"""

from __future__ import annotations

import json

import numpy as np
import pystac
import pytest
import rasterio
from affine import Affine

from senclip.acquire.area import Area, AreaGrid, area_grid, block_lonlat_bounds, parse_bbox, utm_epsg
from senclip.acquire.area_items import CompositeSpec, scene_refs
from senclip.errors import SenclipError
from senclip.net import RetryPolicy

X0, Y1, W, H = 500000.0, 5200000.0, 64, 32
GRID = AreaGrid(32632, X0, Y1, W, H)
BLOCKS = GRID.blocks(32)  # two blocks: columns 0-31 and 32-63
POLICY = RetryPolicy(attempts=3, backoff=0.0)


def _band(path, values) -> None:
    with rasterio.open(path, "w", driver="GTiff", width=W, height=H, count=1, dtype="uint16",
                       crs="EPSG:32632", transform=Affine(10, 0, X0, 0, -10, Y1), nodata=0) as dst:
        dst.write(values.astype(np.uint16), 1)


def _item(folder, bands: dict[str, np.ndarray], relative: bool = False) -> pystac.Item:
    """A Sentinel-2 L2A item of baseline 04.00 over the test grid, its band files written into ``folder``."""
    import datetime as dt

    from rasterio.warp import transform_bounds

    w, s, e, n = transform_bounds("EPSG:32632", "EPSG:4326", X0, Y1 - 10 * H, X0 + 10 * W, Y1)
    geom = {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}
    item = pystac.Item("S2B_TEST_20220614", geom, [w, s, e, n], dt.datetime(2022, 6, 14, 10),
                       {"s2:processing_baseline": "04.00", "proj:epsg": 32632})
    for band, values in bands.items():
        _band(folder / f"{band}.tif", values)
        href = f"./{band}.tif" if relative else str(folder / f"{band}.tif")
        item.add_asset(band, pystac.Asset(href, media_type="image/tiff",
                                          extra_fields={"proj:transform": [10, 0, X0, 0, -10, Y1]}))
    if relative:
        item.set_self_href(str(folder / "item.json"))
    return item


def _dark_left(bright: int = 1500) -> np.ndarray:
    """40 of 64 columns dark (300 DN: below half the 1000 DN offset), the rest bright: 62 % dark overall,
    all of block 1 and a quarter of block 2."""
    values = np.full((H, W), bright, dtype=np.uint16)
    values[:, :40] = 300
    return values


def test_radiometry_is_decided_once_per_item_the_same_in_every_block(tmp_path):
    """Metadata says baseline 04.00 (offset 1000) but the values do not carry it: the plan-time check on the
    whole item drops the offset for every block (checking each block's values kept it in the bright block)."""
    from senclip.acquire.area_read import check_radiometry
    from senclip.acquire.composite import composite_block

    raw = _dark_left()
    spec = CompositeSpec(bands=("B04",))
    (ref,) = scene_refs([_item(tmp_path, {"B04": raw})], spec.bands)
    assert ref.offset_dn == {"B04": 1000} and ref.source == "baseline"
    (checked,) = check_radiometry([ref], spec, POLICY)
    assert checked.offset_dn == {"B04": 0} and checked.check == "offset-not-in-data"
    area = Area(parse_bbox("11,46,12,47").wkt, mask=False, source="test")
    for block in BLOCKS:
        values, rec = composite_block([checked], GRID, area, block, spec, POLICY)
        want = {"id": ref.id, "offset_dn": 0, "kept": 32 * 32, "check": "offset-not-in-data"}
        assert rec["items"] == [want]
        assert (values[0] == raw[:, block.x : block.x + block.width]).all(), block.name
        _, rec = composite_block([ref], GRID, area, block, spec, POLICY)  # a block never decides on its own
        assert rec["items"][0]["offset_dn"] == 1000, block.name
    carries = tmp_path / "carries"
    carries.mkdir()
    (ok,) = check_radiometry(scene_refs([_item(carries, {"B04": raw + 1000})], spec.bands), spec, POLICY)
    assert ok.offset_dn == {"B04": 1000} and ok.check is None  # values that carry the offset keep it


def test_each_file_of_a_block_is_retried_alone(tmp_path, monkeypatch):
    """A transient failure of one file re-reads that file only, not every file of the block."""
    import senclip.acquire.chips as chips
    from senclip.acquire.area_read import load_scenes

    spec = CompositeSpec(bands=("B04", "B03"), threads=1)
    refs = scene_refs([_item(tmp_path, {"B04": _dark_left(), "B03": _dark_left(900)})], spec.bands)
    opened: list[str] = []
    real = chips._open

    def flaky(href, policy, attempt, what):
        opened.append(href.rsplit("/", 1)[-1])
        if href.endswith("B04.tif") and attempt == 1:
            raise OSError("HTTP response code: 503")
        return real(href, policy, attempt, what)

    monkeypatch.setattr(chips, "_open", flaky)
    data, _ = load_scenes(refs, GRID, BLOCKS[0], spec, POLICY)
    assert sorted(opened) == ["B03.tif", "B04.tif", "B04.tif"]
    assert (data[0, 0] == 300).all() and (data[0, 1] == _dark_left(900)[:, :32]).all()


def test_hrefs_are_absolute_unsigned_and_signed_by_the_block_that_reads_them(tmp_path, monkeypatch):
    """A relative asset href is resolved against the item; the plan keeps it unsigned, and each block signs
    (Planetary Computer's sign, faked here) right before its reads."""
    import sys
    import types

    from senclip.acquire.area_read import load_scenes

    signed: list[str] = []

    def sign(href: str) -> str:
        signed.append(href)
        return href  # a local path: what a real signer would append a fresh token to

    fake = types.SimpleNamespace(sign=sign, sign_inplace=None)
    monkeypatch.setitem(sys.modules, "planetary_computer", fake)
    spec = CompositeSpec(bands=("B04",), threads=1)
    (ref,) = scene_refs([_item(tmp_path, {"B04": _dark_left()}, relative=True)], spec.bands)
    assert ref.item["assets"]["B04"]["href"] == str(tmp_path / "B04.tif")
    assert not signed  # nothing signed at plan time
    for block in BLOCKS:
        load_scenes([ref], GRID, block, spec, POLICY, signer="planetary-computer")
    assert signed == [str(tmp_path / "B04.tif")] * 2  # once per block, when it reads
    served = _item(tmp_path, {"B04": _dark_left()})  # a local path in an item an API serves stays a path
    served.set_self_href("http://127.0.0.1:9/collections/c/items/S2B_TEST_20220614")
    assert scene_refs([served], spec.bands)[0].item["assets"]["B04"]["href"] == str(tmp_path / "B04.tif")


def test_valid_dark_pixels_are_kept_at_1_and_nodata_stays_0():
    """In a file holding the +1000 DN offset, raw values up to 1000 are valid dark pixels (reflectance <= 0
    clipped to 1 DN), 0 is nodata; the median sees the 1s."""
    from senclip.acquire.area_items import SceneRef
    from senclip.acquire.composite import median_kept, observations

    raw = np.array([[[[0, 500, 1000, 1001, 1500]]], [[[1200, 0, 1100, 0, 1600]]]], dtype=np.uint16)
    scenes = [SceneRef(f"i{i}", "2022-06-14T10:00:00+00:00", "2022-06-14", None, (0, 0, 0, 0), {},
                       {"B04": 1000}, "baseline", "04.00", has_scl=False) for i in range(2)]
    values, keep, records = observations(raw.copy(), np.zeros((2, 1, 5), np.uint8), scenes,
                                         CompositeSpec(bands=("B04",)), np.ones((1, 5), bool))
    assert values[0, 0, 0].tolist() == [0, 1, 1, 1, 500]
    assert keep[0, 0].tolist() == [False, True, True, True, True]
    assert values[1, 0, 0].tolist() == [200, 0, 100, 0, 600] and [r["kept"] for r in records] == [4, 3]
    med, n = median_kept(values, keep)
    assert med[0, 0].tolist() == [200, 1, 51, 1, 550] and n[0].tolist() == [1, 1, 2, 1, 2]


def test_southern_hemisphere_grid_is_utm_south_on_10_m_edges():
    assert utm_epsg(18.4, -33.9) == 32734 and utm_epsg(18.4, 33.9) == 32634
    grid = area_grid(parse_bbox("18.40,-33.95,18.45,-33.90"))  # Cape Town
    assert grid.epsg == 32734 and grid.resolution == 10
    assert grid.x0 % 10 == 0 and grid.y1 % 10 == 0 and 1_000_000 < grid.y1 < 10_000_000
    assert 440 < grid.width < 480 and 540 < grid.height < 570
    w, s, e, n = block_lonlat_bounds(grid, grid.blocks(4096)[0])
    assert w < 18.40 and e > 18.45 and s < -33.95 and n > -33.90  # the grid covers the area


def test_work_folders_senclip_did_not_make_are_refused_and_changed_items_named(tmp_path):
    from senclip.areas.plan import claim_work

    ident = {"items": ["a", "b", "c"], "grid": 1}
    foreign = tmp_path / "OUT.tif.blocks"
    foreign.mkdir()
    (foreign / "mine.txt").write_text("the user's")
    with pytest.raises(SenclipError, match=r"was not made by senclip.*choose another OUTPUT.*--overwrite"):
        claim_work(foreign, ident, False, "map", "choose another OUTPUT", restart=True)
    assert (foreign / "mine.txt").read_text() == "the user's"
    assert claim_work(foreign, ident, True, "map", "x") is False and not (foreign / "mine.txt").exists()
    assert claim_work(foreign, ident, False, "map", "x") is True  # ours now, the same job: resumed
    (foreign / "blocks.jsonl").write_text("{}\n")
    changed = {"items": ["a", "c", "d", "e"], "grid": 1}
    with pytest.raises(SenclipError) as info:
        claim_work(foreign, changed, False, "composite", "pass another --cache folder")
    assert "items: 1 gone (b); 2 new (d, e) differ" in str(info.value) and "--cache" in str(info.value)
    assert (foreign / "blocks.jsonl").exists()  # refused: nothing removed
    assert claim_work(foreign, changed, False, "map", "x", restart=True) is False  # a map's blocks: restarted
    assert not (foreign / "blocks.jsonl").exists()
    assert json.loads((foreign / "identity.json").read_text()) == changed
    empty = tmp_path / "empty.blocks"
    empty.mkdir()
    assert claim_work(empty, ident, False, "map", "x") is False  # an empty folder holds nothing to lose


def test_map_resume_identity_ignores_run_only_options():
    from dataclasses import replace

    from senclip.areas.maps import PixelJob, map_identity, map_pixels_identity
    from senclip.mapping.mapper import MapOptions
    from senclip.mapping.pixels import PixelMapOptions
    from senclip.mapping.scenes import ClassifierSpec, MapJob, ModelSpec

    class Plan:
        def key(self):
            return "k"

    job = MapJob(ModelSpec("senclip-tiny-vit", "w.safetensors"), ClassifierSpec(), MapOptions())
    run_only = replace(job, model=replace(job.model, device="cuda"),
                       options=replace(job.options, progress=False, workers=7, batch_size=3, quicklook=False))
    def ident(j):
        return map_identity(Plan(), j, "w", "c", 64, 32, 64)

    assert ident(job) == ident(run_only)
    for changed in (replace(job, options=replace(job.options, min_valid=0.9)),
                    replace(job, options=replace(job.options, resolution="input")),
                    replace(job, model=replace(job.model, precision="bf16"))):
        assert ident(job) != ident(changed)
    prompts = (("a", ("x",)),)
    pj = PixelJob(ModelSpec("m"), prompts, PixelMapOptions())
    fast = PixelJob(ModelSpec("m", device="cuda"), prompts, PixelMapOptions(batch_size=9, block_rows=5))
    seasons = PixelJob(ModelSpec("m"), prompts, PixelMapOptions(time_steps=4))
    assert map_pixels_identity(Plan(), pj, "t") == map_pixels_identity(Plan(), fast, "t")
    assert map_pixels_identity(Plan(), pj, "t") != map_pixels_identity(Plan(), seasons, "t")


def test_composite_path_in_the_map_item_is_relative_to_the_map(tmp_path):
    from senclip.areas.maps import _relative

    out = tmp_path / "maps"
    beside = out / "landuse_composites" / "composite.tif"
    assert _relative(beside, out) == "./landuse_composites/composite.tif"
    assert _relative(tmp_path / "cache" / "a" / "composite.tif", out) == "../cache/a/composite.tif"


def _shared_size(job, k):
    return len(job["scenes"]) + k


def test_dask_sends_the_shared_job_once_not_with_every_task(monkeypatch):
    from distributed import Client, Future, LocalCluster

    from senclip.cluster import run_on_cluster

    sent = []
    submit = Client.submit

    def spy(self, fn, *args, **kwargs):
        sent.append(args)
        return submit(self, fn, *args, **kwargs)

    monkeypatch.setattr(Client, "submit", spy)
    job = {"scenes": list(range(5000))}
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp://",
                      host="127.0.0.1", dashboard_address=None) as cluster:
        got = sorted(run_on_cluster(_shared_size, [(1,), (2,)], ["t-1", "t-2"], cluster.scheduler_address,
                                    progress=False, shared=job))
    assert got == [5001, 5002]
    assert len(sent) == 2 and all(isinstance(args[0], Future) and len(args) == 2 for args in sent)
