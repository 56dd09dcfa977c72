"""Bad time-series input: one-line error, exit status 2, nothing written."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import rasterio

from senclip.cli import main
from senclip.data.series.io import ArraySource
from senclip.data.series.rasters import write_stack
from senclip.data.sources import open_series
from senclip.errors import SenclipError

DATES = [dt.date(2020, m, 10) for m in (1, 3, 5, 7)]


def _stack(tmp_path, name="s.tif", valid=None, bands=("NDVI",)):
    data = np.random.default_rng(0).random((4, len(bands), 6, 5)).astype(np.float32)
    return write_stack(tmp_path / name, data, DATES, bands, valid)


def _run(tmp_path, stack, *extra, capsys):
    out = tmp_path / "out.tif"
    status = main(["map-pixels", str(stack), str(out), "--model", "senclip-tiny-vit", "--no-progress",
                   *extra])
    err = capsys.readouterr().err.strip()
    assert status == 2 and not out.exists() and not list(tmp_path.glob("out.tif*"))
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_stack_without_dates(tmp_path, capsys):
    path = _stack(tmp_path)
    with rasterio.open(path, "r+") as ds:
        ds.update_tags(dates="")
    assert "no dates" in _run(tmp_path, path, capsys=capsys)


def test_unparseable_dates(tmp_path, capsys):
    path = _stack(tmp_path)
    assert "cannot parse" in _run(tmp_path, path, "--dates", "2020-01-10,2020-03-10,May 5th,2020-07-10",
                                  capsys=capsys)


def test_band_count_mismatch(tmp_path, capsys):
    path = _stack(tmp_path)
    assert "not a multiple" in _run(tmp_path, path, "--dates", "2020-01-01,2020-02-01,2020-03-01",
                                    capsys=capsys)
    assert "band names" in _run(tmp_path, path, "--input-bands", "B04,B08", capsys=capsys)


def test_mask_shape_mismatch(tmp_path, capsys):
    path = _stack(tmp_path)
    mask = tmp_path / "mask.tif"
    with rasterio.open(mask, "w", driver="GTiff", count=4, height=5, width=5, dtype="uint8") as m:
        m.write(np.zeros((4, 5, 5), np.uint8))
    assert "mask shape" in _run(tmp_path, path, "--mask", str(mask), capsys=capsys)
    with pytest.raises(SenclipError, match="mask shape"):
        ArraySource(np.zeros((4, 1, 6, 5)), DATES, ["NDVI"], valid=np.ones((4, 6, 6), bool))


def test_all_missing_pixels(tmp_path, capsys, monkeypatch):
    from senclip.data.series.dataset import TimeSeriesDataset

    src = open_series(_stack(tmp_path, valid=np.zeros((4, 6, 5), bool)))
    _, valid = src.read(slice(0, 6))
    assert not valid.any()
    labels = tmp_path / "labels.tif"
    with rasterio.open(labels, "w", driver="GTiff", count=1, height=6, width=5, dtype="uint8") as m:
        m.write(np.full((1, 6, 5), 2, np.uint8))
    with pytest.raises(SenclipError, match="no labelled pixel with a clear observation"):
        TimeSeriesDataset(tmp_path / "s.tif", labels=labels)
    # map-pixels refuses a series without any clear observation (typically an inverted mask)
    from senclip.models import create_model
    from senclip.models.timesen import TimeSenConfig, build_timesen_model

    model = build_timesen_model(create_model("senclip-tiny-vit"),
                                TimeSenConfig(bands=("NDVI",), embed_dim=128, width=16, layers=1, heads=2,
                                              mlp_dim=16))
    monkeypatch.setattr("senclip.commands.common.load_model_from_args", lambda args: model)
    assert "no pixel has a clear observation" in _run(tmp_path, tmp_path / "s.tif", capsys=capsys)


def test_missing_input_and_bad_folder(tmp_path, capsys):
    assert "not found" in _run(tmp_path, tmp_path / "nope.tif", capsys=capsys)
    folder = tmp_path / "scenes"
    folder.mkdir()
    _stack(folder, "S2_20200110.tif")
    _stack(folder, "S2_scene.tif")
    assert "no date in the file name" in _run(tmp_path, folder, capsys=capsys)


def test_unreadable_label_raster(tmp_path, capsys):
    stack = _stack(tmp_path)
    (tmp_path / "labels.tif").write_text("not a raster")
    for labels in (tmp_path / "missing.tif", tmp_path / "labels.tif"):
        status = main(["proxy-pairs", "--series", str(stack), "--labels", str(labels), "--model",
                       "senclip-tiny-vit", "--out", str(tmp_path / "proxy"), "--no-progress"])
        err = capsys.readouterr().err.strip()
        assert status == 2 and err.startswith("error: label raster") and "\n" not in err
        assert not (tmp_path / "proxy").exists()
