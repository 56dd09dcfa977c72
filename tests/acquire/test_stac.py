"""Signing hooks and band-asset lookup across providers' naming."""

from __future__ import annotations

import importlib.util

import pystac
import pytest

from senclip.acquire.stac import asset_href, find_asset, make_signer
from senclip.errors import SenclipError


def _item(assets: dict) -> pystac.Item:
    item = pystac.Item(
        "x",
        {"type": "Point", "coordinates": [0, 0]},
        [0, 0, 0, 0],
        pystac.utils.str_to_datetime("2020-01-01T00:00:00Z"),
        {},
    )
    for key, extra in assets.items():
        item.add_asset(key, pystac.Asset(f"http://127.0.0.1/{key}.tif", extra_fields=extra))
    return item


def test_band_assets_by_code_common_name_or_eo_bands():
    assert find_asset(_item({"B04": {}, "SCL": {}}), "B04") == "B04"  # Planetary Computer keys
    assert find_asset(_item({"red": {}, "nir08": {}, "scl": {}}), "B8A") == "nir08"  # Earth Search v1
    assert find_asset(_item({"red": {}, "scl": {}}), "SCL") == "scl"
    assert find_asset(_item({"band_x": {"eo:bands": [{"name": "B11"}]}}), "B11") == "band_x"
    assert find_asset(_item({"red": {}}), "SCL") is None
    with pytest.raises(SenclipError, match="no asset for band B12"):
        asset_href(_item({"red": {}}), "B12")


def test_signers():
    assert make_signer("auto", "https://earth-search.aws.element84.com/v1") is None
    assert make_signer("none", "https://planetarycomputer.microsoft.com/api/stac/v1") is None
    with pytest.raises(SenclipError, match="unknown signer"):
        make_signer("aws", "http://x")
    if importlib.util.find_spec("planetary_computer") is None:
        with pytest.raises(SenclipError, match="pip install planetary-computer"):
            make_signer("auto", "https://planetarycomputer.microsoft.com/api/stac/v1")
    else:
        assert callable(make_signer("auto", "https://planetarycomputer.microsoft.com/api/stac/v1"))


def test_stac_api_503_is_retried(tmp_path):
    import json

    from senclip.acquire.stac import open_catalog
    from senclip.net import RemoteError, RetryPolicy
    from senclip.testing import RangeServerProcess

    landing = {
        "type": "Catalog",
        "stac_version": "1.0.0",
        "id": "t",
        "description": "t",
        "links": [],
        "conformsTo": ["https://api.stacspec.org/v1.0.0/core"],
    }
    (tmp_path / "stac.json").write_text(json.dumps(landing))
    with RangeServerProcess(tmp_path) as srv:
        srv.faults.add("stac.json", "503", times=2)
        client = open_catalog(srv.url("stac.json"), RetryPolicy(attempts=3, backoff=0.01))
        assert client.id == "t" and srv.requests["/stac.json"] == 3
        srv.faults.add("stac.json", "503", times=None)
        with pytest.raises(RemoteError, match="after 2 tries"):
            open_catalog(srv.url("stac.json"), RetryPolicy(attempts=2, backoff=0.01))
