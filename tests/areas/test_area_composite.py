"""``senclip composite`` against a loopback STAC API: the composite equals an independent numpy computation.

The test area (senclip.testing.areas) straddles UTM zones 32 and 33, has four dates in the season
(two before and two from processing baseline 04.00), clouds, shadows and cirrus in SCL, a nodata
stripe and a corner clouded on every date; each catalogue shape publishes the offset differently.
"""

from __future__ import annotations

import json

import area_reference as reference
import numpy as np
import pystac
import pytest
import rasterio
from area_helpers import BBOX, composite_args

from senclip.cli import main

BANDS = ("B04", "B03", "B02", "B8A")


def _grid(path):
    with rasterio.open(path) as src:
        return src.crs.to_epsg(), src.transform, (src.height, src.width), src.read()


@pytest.mark.parametrize(("catalogue", "masked"), [("earth-search", None), ("planetary-computer", None),
                                                   ("cdse", (0, 8, 9))])
def test_composite_equals_independent_computation(area_stac, tmp_path, catalogue, masked):
    """The default SCL mask on two catalogues, --mask-classes 0,8,9 on the third (shadows, cirrus and
    saturated pixels kept)."""
    out = tmp_path / "season.tif"
    mask = ("--mask-classes", ",".join(map(str, masked))) if masked else ()
    assert (
        main(
            composite_args(
                area_stac, out, catalogue, "--download-bands", ",".join(BANDS), "--block-size", "128", *mask
            )
        )
        == 0
    )
    epsg, transform, shape, got = _grid(out)
    assert epsg == 32632  # the UTM zone of the area's centre
    assert transform.a == 10 and transform.c % 10 == 0 and transform.f % 10 == 0
    want = reference.composite(
        area_stac.root, catalogue, "2022-01-01", "2022-03-31", BANDS, epsg, transform, shape,
        masked=masked or reference.MASKED,
    )
    assert got.shape == want.shape
    assert (got == want).all(), f"{(got != want).any(axis=0).sum()} of {shape[0] * shape[1]} pixels differ"
    if masked:  # the flag has an effect: shadows and cirrus now count
        default = reference.composite(area_stac.root, catalogue, "2022-01-01", "2022-03-31", BANDS, epsg,
                                      transform, shape)
        assert 0.01 < (got != default).any(axis=0).mean() < 0.5
    # what the data hold: both zones, a masked corner, the nodata stripe of the zone-33 tile
    assert 0.9 < (got[0] > 0).mean() < 1.0
    with rasterio.open(out) as src:
        assert src.descriptions == BANDS and src.scales == (1e-4,) * 4 and src.nodata == 0
        tags = src.tags()
        assert len(tags["items"].split(",")) == 7 and tags["composite_method"] == "median"
        assert tags["mask_classes"] == ",".join(map(str, masked or reference.MASKED))
        assert tags["radiometry"] == "harmonised"
        assert tags["time_start"] == "2022-01-01" and tags["time_end"] == "2022-03-31"
    assert not (tmp_path / "season.tif.blocks").exists()


def test_composite_item_reads_back_with_pystac(area_stac, tmp_path):
    from pystac.extensions.eo import EOExtension
    from pystac.extensions.projection import ProjectionExtension
    from pystac.extensions.raster import RasterExtension

    out = tmp_path / "c.tif"
    assert main(composite_args(area_stac, out, "planetary-computer", "--block-size", "128")) == 0
    item = pystac.Item.from_file(str(tmp_path / "c.item.json"))
    core_valid(item)
    assert item.properties["senclip:product"] == "composite"
    assert item.properties["start_datetime"].startswith("2022-01-01")
    asset = item.assets["data"]
    assert asset.href == "./c.tif" and asset.roles == ["data"]
    assert asset.get_absolute_href() == str(out)
    proj = ProjectionExtension.ext(item)
    with rasterio.open(out) as src:
        assert proj.code == "EPSG:32632" and proj.shape == [src.height, src.width]
        assert proj.transform == list(src.transform)[:6]
    bands = RasterExtension.ext(asset).bands
    assert [(b.scale, b.offset, b.nodata) for b in bands] == [(1e-4, 0.0, 0)] * 3
    eo = EOExtension.ext(asset).bands
    assert [(b.name, b.common_name) for b in eo] == [("B04", "red"), ("B03", "green"), ("B02", "blue")]
    w, s, e, n = item.bbox
    assert w < 11.986 and e > 12.011 and s < 46.996 and n > 47.003


def core_valid(item) -> None:
    """Validate against the STAC core schema that pystac ships (the extension schemas are online only)."""
    from pystac.validation import validate_dict

    d = item.to_dict(include_self_link=False)
    d["stac_extensions"] = []  # the extension schemas cannot be fetched offline
    validate_dict(d)


def test_first_valid_and_other_zone_grid(area_stac, tmp_path):
    out = tmp_path / "fv.tif"
    assert (
        main(
            composite_args(
                area_stac,
                out,
                "cdse",
                "--method",
                "first-valid",
                "--crs",
                "EPSG:32633",
                "--download-bands",
                "B04,B8A",
                "--block-size",
                "100",
            )
        )
        == 0
    )
    epsg, transform, shape, got = _grid(out)
    assert epsg == 32633
    want = reference.first_valid(
        area_stac.root, "cdse", "2022-01-01", "2022-03-31", ("B04", "B8A"), epsg, transform, shape
    )
    assert (got == want).all(), f"{(got != want).any(axis=0).sum()} pixels differ"


@pytest.fixture(scope="module")
def monthly(area_stac, tmp_path_factory):
    """``composite --monthly --year 2022`` of the test area (Earth Search, B04 and B08)."""
    out = tmp_path_factory.mktemp("monthly") / "year.tif"
    args = [
        "composite",
        "--bbox",
        BBOX,
        "--monthly",
        "--year",
        "2022",
        "--stac-url",
        area_stac.url,
        "--collection",
        "earth-search",
        "--download-bands",
        "B04,B08",
        "--out",
        str(out),
        "--no-progress",
        "--block-size",
        "128",
    ]
    assert main(args) == 0
    return out


def test_monthly_composite_in_the_map_pixels_layout(area_stac, monthly):
    from senclip.data.series.rasters import StackSource

    out = monthly
    epsg, transform, shape, got = _grid(out)
    want = reference.monthly(area_stac.root, "earth-search", 2022, ("B04", "B08"), epsg, transform, shape)
    assert got.shape == (36, *shape)
    assert (got == want).all(), f"{(got != want).any(axis=0).sum()} pixels differ"
    qa = got[2::3]
    seen = (qa == 1).any(axis=0)
    assert (qa[[0, 1, 2, 5]] == 1).mean() > 0.9 and (qa[[3, 4, 6, 7, 8, 9, 10, 11]][:, seen] == 2).all()
    assert 0 < (~seen).sum() and (qa[:, ~seen] == 0).all() and (got[:, ~seen] == 0).all()  # never seen
    with rasterio.open(out) as src:  # QA is never 0 where a pixel has data: nodata 0 masks no clear month
        assert src.nodata == 0 and src.descriptions[2] == "QA" and src.scales[2] == 1.0
        assert ((src.read(3, masked=True).mask) == ~seen).all()
    source = StackSource(out)  # what map-pixels reads
    assert source.bands == ("B04", "B08") and [d.month for d in source.dates] == list(range(1, 13))
    data, valid = source.read(slice(0, 5))
    assert np.allclose(data[0, 0], got[0, :5]) and (valid == (qa[:, :5] == 1)).all()
    item = json.loads(out.with_name("year.item.json").read_text())
    assert item["properties"]["senclip:product"] == "monthly-composite"
    assert len(item["assets"]["data"]["eo:bands"]) == 36
    qa_band = item["assets"]["data"]["raster:bands"][2]
    assert qa_band["nodata"] == 0 and [c["value"] for c in qa_band["classification:classes"]] == [1, 2]


def test_acquire_series_composites_months_by_the_same_rule(area_stac, monthly, tmp_path):
    """Training stacks (``acquire series``) and inference composites (``composite --monthly``) reduce the
    same way: same-day items fused (at this point two tiles, two UTM zones, hold each acquisition of
    January to March), then the median per month; the uint16 composite rounds it half up."""
    import pandas as pd

    lon, lat = 12.0085, 46.9985  # inside the zone-33 tile too
    pd.DataFrame([{"point_id": "p", "lat": lat, "lon": lon, "date": "2022-06-01"}]).to_csv(tmp_path / "p.csv")
    out = tmp_path / "series"
    assert main(["acquire", "series", "--points", str(tmp_path / "p.csv"), "--stac-url", area_stac.url,
                 "--collection", "earth-search", "--out", str(out), "--year", "2022", "--chip-px", "9",
                 "--bands", "B04,B08", "--no-progress", "--backoff", "0.01"]) == 0
    rec = json.loads((out / "series.jsonl").read_text().splitlines()[0])
    assert sum("_33TUM_" in i for i in rec["items"]) >= 3 and sum("_32TQS_" in i for i in rec["items"]) >= 4
    with rasterio.open(out / "series" / "p.tif") as s, rasterio.open(monthly) as m:
        assert s.crs == m.crs
        col, row = (s.transform.c - m.transform.c) / 10, (m.transform.f - s.transform.f) / 10
        assert col == int(col) and row == int(row)
        window = rasterio.windows.Window(int(col), int(row), 9, 9)
        series, comp = s.read().reshape(12, 3, 9, 9), m.read(window=window).reshape(12, 3, 9, 9)
    clear = series[:, 2] == 0  # the stack's CLM: 0 = a clear month
    assert (clear == (comp[:, 2] == 1)).all() and clear[:3].mean() > 0.8
    rounded = np.floor(series[:, :2] + 0.5)
    assert (rounded[np.broadcast_to(clear[:, None], rounded.shape)]
            == comp[:, :2][np.broadcast_to(clear[:, None], rounded.shape)]).all()


@pytest.mark.parametrize("fmt", ["geojson", "gpkg", "parquet", "shp"])
def test_area_file_formats_mask_outside_the_polygon(area_stac, tmp_path, fmt):
    import geopandas as gpd
    from shapely.geometry import Polygon

    tri = Polygon([(11.986, 46.996), (12.011, 46.996), (11.986, 47.003)])
    frame = gpd.GeoDataFrame({"name": ["a"]}, geometry=[tri], crs="EPSG:4326")
    path = tmp_path / f"area.{fmt}"
    if fmt == "parquet":
        frame.to_crs("EPSG:3035").to_parquet(path)  # any CRS: reprojected on reading
    else:
        frame.to_file(path)
    out = tmp_path / "tri.tif"
    assert (
        main(
            [
                "composite",
                "--area",
                str(path),
                "--time",
                "2022-01-01/2022-03-31",
                "--stac-url",
                area_stac.url,
                "--collection",
                "earth-search",
                "--out",
                str(out),
                "--no-progress",
                "--block-size",
                "128",
            ]
        )
        == 0
    )
    with rasterio.open(out) as src:
        data = src.read(1)
        rows, cols = np.mgrid[0 : src.height, 0 : src.width]
        xs, ys = rasterio.transform.xy(src.transform, rows.ravel(), cols.ravel())
        from pyproj import Transformer

        lon, lat = Transformer.from_crs(src.crs.to_epsg(), 4326, always_xy=True).transform(xs, ys)
    from shapely import contains_xy

    inside = contains_xy(tri, np.asarray(lon), np.asarray(lat)).reshape(data.shape)
    assert (data[~inside] == 0).all()
    assert (data[inside] > 0).mean() > 0.9
