"""One registry of series sources: every kind is found by the path's type, a STAC area request included."""

from __future__ import annotations

import json

import numpy as np
import rasterio
from area_helpers import BBOX

from senclip.cli import main
from senclip.testing.areas import TEST_AREA


def test_registry_lists_the_kinds_in_order(eopatch_root, tmp_path):
    from senclip.data.series.io import EOPatchSource
    from senclip.data.sources import find_kind, source_kinds

    names = [k.name for k in source_kinds()]
    assert names[:2] == ["eopatch", "sen4map"] and names.index("dated-folder") < names.index("stack")
    assert find_kind(eopatch_root).name == "eopatch"
    from senclip.data.sources import open_series

    assert isinstance(open_series(eopatch_root), EOPatchSource)
    (tmp_path / "s.h5").write_bytes(b"")
    assert find_kind(tmp_path / "s.h5").name == "sen4map"
    (tmp_path / "folder").mkdir()
    assert find_kind(tmp_path / "folder").name == "dated-folder"
    (tmp_path / "plain.json").write_text("{}")
    assert find_kind(tmp_path / "plain.json").name == "stack"  # not a request: the general file kind


def test_stac_area_kind_is_found_without_importing_the_acquisition_layer(tmp_path):
    """The kind is declared as an entry point: a fresh process that imports only the data layer finds it."""
    import subprocess
    import sys

    request = tmp_path / "request.json"
    request.write_text(json.dumps({"type": "senclip-stac-area", "stac_url": "http://127.0.0.1:9",
                                   "bbox": list(TEST_AREA.bbox), "time": "2022-01-01/2022-12-31"}))
    code = ("import sys; from senclip.data.sources import find_kind; "
            "print(find_kind(sys.argv[1]).name, 'senclip.acquire.area_source' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(request)], capture_output=True, text=True,
                         check=True)
    assert out.stdout.split() == ["stac-area", "True"]


def test_stac_area_request_reads_as_a_series_of_days(area_stac, tmp_path):
    from senclip.data.series.composite import monthly_composite
    from senclip.data.sources import find_kind, open_series

    request = tmp_path / "request.json"
    request.write_text(json.dumps({"type": "senclip-stac-area", "stac_url": area_stac.url,
                                   "collection": "cdse",
                                   "bbox": list(TEST_AREA.bbox), "time": "2022-01-01/2022-12-31"}))
    assert find_kind(request).name == "stac-area"
    source = open_series(request, bands=["B04", "B08"])
    assert [d.isoformat() for d in source.dates] == ["2022-01-10", "2022-01-20", "2022-02-14", "2022-03-11",
                                                      "2022-06-10"]
    data, valid = source.read(slice(0, source.height))
    months, ok = monthly_composite(data, source.dates, valid, "median", year=2022)
    out = tmp_path / "year.tif"
    assert main(["composite", "--bbox", BBOX, "--monthly", "--year", "2022", "--stac-url", area_stac.url,
                 "--collection", "cdse", "--download-bands", "B04,B08", "--out", str(out), "--no-progress",
                 "--block-size", "128"]) == 0
    with rasterio.open(out) as src:
        assert (src.height, src.width, src.transform) == (source.height, source.width, source.transform)
        year = src.read().reshape(12, 3, src.height, src.width)
    assert (ok == (year[:, 2] == 1)).all()  # QA marks the months with a clear observation
    rounded = np.floor(np.nan_to_num(months) + 0.5).astype(np.uint16)
    seen = np.broadcast_to(ok[:, None], rounded.shape)
    assert (rounded[seen] == year[:, :2][seen]).all()  # the months seen: the same medians
