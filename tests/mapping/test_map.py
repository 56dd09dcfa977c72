"""senclip map on real EuroSAT mosaics: positions, COG, nodata, overlap, bands."""

from __future__ import annotations

import json

import numpy as np
import rasterio
import torch
from affine import Affine
from mapping_helpers import BLOCK, GRID, encode_blocks, write_raster

from senclip.mapping.mapper import MapOptions, map_scene
from senclip.mapping.source import SourceOptions
from senclip.mapping.writers import NODATA_CLASS

QUIET = {"progress": False, "quicklook": False}


def _read(path):
    with rasterio.open(path) as ds:
        return ds.read(), ds.profile, ds


def test_blocks_carry_per_tile_predictions_at_their_positions(tiny_vit, mosaic, probe, tmp_path):
    out = tmp_path / "map.tif"
    map_scene(tiny_vit, probe, str(mosaic["path"]), out, MapOptions(**QUIET))
    expected = probe.predict(encode_blocks(tiny_vit, mosaic["images"]).numpy())
    assert len(set(expected)) >= 5  # positions matter: many different classes
    with rasterio.open(mosaic["path"]) as src, rasterio.open(out) as dst:
        assert dst.crs == src.crs
        assert dst.transform == src.transform @ Affine.scale(BLOCK)
        assert (dst.width, dst.height) == (GRID, GRID)
        classes = dst.read(1)
        for i, want in enumerate(expected):
            r, c = divmod(i, GRID)
            x, y = src.xy(r * BLOCK + BLOCK // 2, c * BLOCK + BLOCK // 2)  # block centre on the ground
            row, col = dst.index(x, y)
            assert classes[row, col] == want, f"block {r},{c}"


def test_cog_upsampled_probabilities_legend_quicklook(tiny_vit, mosaic, probe, tmp_path):
    out, probs = tmp_path / "map.tif", tmp_path / "probs.tif"
    map_scene(tiny_vit, probe, str(mosaic["path"]), out,
              MapOptions(resolution="input", probabilities=str(probs), progress=False))
    with rasterio.open(mosaic["path"]) as src, rasterio.open(out) as ds:
        assert ds.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert ds.profile["tiled"] and ds.overviews(1)
        assert ds.transform == src.transform and ds.crs == src.crs and ds.shape == src.shape
        assert ds.nodata == NODATA_CLASS
        classes = ds.read(1)
        cmap = ds.colormap(1)
        names = json.loads(ds.tags()["CLASSES"])
    legend = json.loads(out.with_suffix(".legend.json").read_text())
    assert [e["name"] for e in legend["classes"]] == names == probe.classes
    for e in legend["classes"]:
        assert "#{:02x}{:02x}{:02x}".format(*cmap[e["value"]][:3]) == e["color"]
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with rasterio.open(probs) as ds:
        p = ds.read()
        assert ds.count == len(names) and ds.descriptions == tuple(names)
        assert ds.transform == src.transform @ Affine.scale(BLOCK)
    np.testing.assert_allclose(p.sum(0), 1.0, atol=1e-5)
    np.testing.assert_array_equal(np.repeat(np.repeat(p.argmax(0), BLOCK, 0), BLOCK, 1), classes)
    assert not list(tmp_path.glob("*.partial"))
    import pystac  # the Items beside the class map and the probabilities (contract of `senclip explore`)

    item = pystac.Item.from_file(str(tmp_path / "map.item.json"))
    assert item.properties["senclip:product"] == "class-map" and item.assets["data"].href == "./map.tif"
    assert [c["title"] for c in item.assets["data"].extra_fields["classification:classes"]] == names
    probs_item = pystac.Item.from_file(str(tmp_path / "probs.item.json"))
    assert probs_item.properties["senclip:product"] == "probabilities"
    assert probs_item.properties["senclip:classes"] == names
    assert [b["name"] for b in probs_item.assets["data"].extra_fields["raster:bands"]] == names
    assert probs_item.properties["proj:shape"] == [ds.height, ds.width]


def test_nodata_and_cloud_mask(tiny_vit, mosaic, probe, tmp_path):
    data = mosaic["data"].copy()
    data[:, :BLOCK, :BLOCK] = 0  # block (0, 0) is nodata
    data[:, 100:110, 200:210] = 0  # a small hole inside block (1, 3)
    cloud = np.zeros((1, *data.shape[1:]), np.uint8)
    cloud[0, 2 * BLOCK:3 * BLOCK, BLOCK:2 * BLOCK] = 9  # block (2, 1) under a cloud (SCL 9)
    path = write_raster(tmp_path / "holes.tif", np.concatenate([data, cloud]),
                        ["B04", "B03", "B02", "SCL"], nodata=0)
    opts = SourceOptions(mask_band="SCL", mask_values=(3, 8, 9, 10))
    ref = tmp_path / "ref.tif"
    map_scene(tiny_vit, probe, str(mosaic["path"]), ref, MapOptions(**QUIET))
    tile_map = tmp_path / "tile.tif"
    map_scene(tiny_vit, probe, str(path), tile_map, MapOptions(**QUIET, source=opts))
    full_map = tmp_path / "full.tif"
    map_scene(tiny_vit, probe, str(path), full_map, MapOptions(**QUIET, source=opts, resolution="input"))
    cells, ref_cells, full = _read(tile_map)[0][0], _read(ref)[0][0], _read(full_map)[0][0]
    assert cells[0, 0] == NODATA_CLASS and cells[2, 1] == NODATA_CLASS
    valid = np.ones_like(cells, bool)
    valid[0, 0] = valid[2, 1] = False
    assert (cells[valid] != NODATA_CLASS).all()
    assert (full[100:110, 200:210] == NODATA_CLASS).all()  # pixel-level nodata at input resolution
    assert (full[90:100, 200:210] == cells[1, 3]).all()
    np.testing.assert_array_equal(cells[2:, 2:], ref_cells[2:, 2:])  # untouched blocks keep their class


def test_overlapping_tiles_are_averaged(tiny_vit, mosaic, probe, tmp_path):
    out, probs = tmp_path / "map.tif", tmp_path / "p.tif"
    stride = BLOCK // 2
    map_scene(tiny_vit, probe, str(mosaic["path"]), out,
              MapOptions(**QUIET, stride=stride, probabilities=str(probs), batch_size=16))
    p = _read(probs)[0]
    n = GRID * 2 - 1  # tiles per side
    data = mosaic["data"]
    tiles = [data[:, r * stride:r * stride + BLOCK, c * stride:c * stride + BLOCK].transpose(1, 2, 0)
             for r in range(n) for c in range(n)]
    tp = probe(encode_blocks(tiny_vit, tiles)).reshape(n, n, -1)
    expected = np.zeros((GRID * 2, GRID * 2, tp.shape[-1]))
    counts = np.zeros((GRID * 2, GRID * 2, 1))
    for dr in (0, 1):
        for dc in (0, 1):
            expected[dr:dr + n, dc:dc + n] += tp
            counts[dr:dr + n, dc:dc + n] += 1
    np.testing.assert_allclose(p.transpose(1, 2, 0), expected / counts, atol=2e-5)
    with rasterio.open(out) as ds:
        assert ds.transform == _read(mosaic["path"])[1]["transform"] @ Affine.scale(stride)


def test_bands_matched_by_name_not_position(tiny_vit, mosaic, probe, tmp_path):
    order = [2, 0, 1]  # B02, B04, B03
    names = [("B04", "B03", "B02")[i] for i in order]
    shuffled = write_raster(tmp_path / "shuffled.tif", mosaic["data"][order], names)
    a, b, c = tmp_path / "a.tif", tmp_path / "b.tif", tmp_path / "c.tif"
    kw = {"probabilities": None, **QUIET}
    map_scene(tiny_vit, probe, str(mosaic["path"]), a, MapOptions(**kw))
    map_scene(tiny_vit, probe, str(shuffled), b, MapOptions(**kw))
    map_scene(tiny_vit, probe, str(shuffled), c, MapOptions(**kw, source=SourceOptions(bands=(2, 3, 1))))
    np.testing.assert_array_equal(_read(a)[0], _read(b)[0])
    np.testing.assert_array_equal(_read(a)[0], _read(c)[0])


def test_multispectral_bigearthnet_scene(tiny_vit, bigearthnet_root, tmp_path):
    """A 12-band L2A scene from BigEarthNet bands (10/20/60 m brought to 10 m), inflated tower."""
    import copy

    from senclip.bands import S2_L2A_BANDS
    from senclip.mapping.classify import ZeroShotClassifier
    from senclip.models.multiband import set_input_bands

    patch = sorted(p for p in bigearthnet_root.iterdir() if p.is_dir())[0]
    bands, profile = [], None
    for b in S2_L2A_BANDS:
        with rasterio.open(patch / f"{patch.name}_{b}.tif") as ds:
            arr = ds.read(1)
            if ds.width == 120:
                profile = ds.profile
            bands.append(np.kron(arr, np.ones((120 // ds.width,) * 2, arr.dtype)))
    path = write_raster(tmp_path / "ben.tif", np.stack(bands), list(S2_L2A_BANDS), crs=profile["crs"],
                        transform=profile["transform"])
    model = copy.deepcopy(tiny_vit)
    set_input_bands(model.image_tower, S2_L2A_BANDS)
    clf = ZeroShotClassifier(torch.nn.functional.normalize(torch.randn(3, 128), dim=-1), 4.6, ["a", "b", "c"])
    out = tmp_path / "ben_map.tif"
    res = map_scene(model, clf, str(path), out, MapOptions(tile=40, **QUIET))
    assert res["tiles"] == 9
    classes, prof, _ = _read(out)
    assert prof["crs"] == profile["crs"] and classes.shape == (1, 3, 3)
    assert set(np.unique(classes)) <= {0, 1, 2}
