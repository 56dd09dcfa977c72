"""STAC API access: open a catalogue (with optional signing), search a point, find band assets.

Providers:

* plain public APIs (Earth Search ``https://earth-search.aws.element84.com/v1``,
  a local server, …): given by URL, no signing;
* Microsoft Planetary Computer: assets need a SAS token; ``signer="planetary-computer"``
  (or ``"auto"`` with a ``planetarycomputer`` URL) signs through the ``planetary-computer``
  package (``pip install planetary-computer``): every item as it is found
  (:func:`make_signer`, for the point commands, which read at once), or each href right
  before it is read (:func:`href_signer`, for the area blocks of a long run: tokens expire).

Band assets are found by Sentinel-2 band code whatever the provider calls them:
the asset key itself (``B04``, Planetary Computer), its common name (``red``,
Earth Search v1) or an ``eo:bands`` entry of the asset.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from senclip.errors import SenclipError
from senclip.net import RetryPolicy, retry_call

SIGNERS = ("auto", "none", "planetary-computer")
MAX_ITEMS = 5000
"""Default cap on the items of one area search (``--max-items``): reaching it is an error, never a
silent cut."""

EARTH_SEARCH_KEYS: dict[str, str] = {
    "B01": "coastal",
    "B02": "blue",
    "B03": "green",
    "B04": "red",
    "B05": "rededge1",
    "B06": "rededge2",
    "B07": "rededge3",
    "B08": "nir",
    "B8A": "nir08",
    "B09": "nir09",
    "B10": "cirrus",
    "B11": "swir16",
    "B12": "swir22",
    "SCL": "scl",
}
"""Sentinel-2 band code → its asset key in Earth Search v1 (``rededge1``; the eo extension's common names
are :data:`senclip.bands.S2_COMMON_NAMES`)."""


def resolve_signer(name: str, url: str) -> str:
    """``name`` with ``auto`` resolved from ``url``: ``none`` or ``planetary-computer``.

    Raises:
        SenclipError: unknown signer.
    """
    if name not in SIGNERS:
        raise SenclipError(f"unknown signer {name!r}; choose one of {', '.join(SIGNERS)}")
    if name == "auto":
        return "planetary-computer" if "planetarycomputer" in url.lower() else "none"
    return name


def _planetary_computer():
    try:
        import planetary_computer
    except ImportError as exc:
        raise SenclipError(
            "signing for Planetary Computer needs the planetary-computer package: "
            "pip install planetary-computer"
        ) from exc
    return planetary_computer


def href_signer(name: str) -> Callable[[str], str] | None:
    """A function signing one href for resolved signer ``name`` (:func:`resolve_signer`), or ``None``.

    Planetary Computer's ``sign`` keeps its tokens in a cache and fetches a new one when the
    cached one is about to expire, so calling it right before each read never hands out a stale
    token.

    Raises:
        SenclipError: unknown signer, or ``planetary-computer`` not installed.
    """
    if name == "none":
        return None
    if name != "planetary-computer":
        raise SenclipError(f"unknown signer {name!r}; choose one of {', '.join(SIGNERS)}")
    return _planetary_computer().sign


def make_signer(name: str, url: str) -> Callable[[Any], None] | None:
    """The item modifier that signs asset hrefs for provider ``name``.

    Args:
        name: one of :data:`SIGNERS`.
        url: the STAC API URL (``auto`` picks Planetary Computer from it).

    Raises:
        SenclipError: unknown signer, or ``planetary-computer`` not installed.
    """
    name = resolve_signer(name, url)
    if name == "none":
        return None
    return _planetary_computer().sign_inplace


def open_catalog(url: str, policy: RetryPolicy, signer: str = "auto", headers: dict[str, str] | None = None):
    """Open a STAC API with pystac-client, retrying transient failures.

    Args:
        url: the API's landing page.
        policy: retries and request timeout.
        signer: see :func:`make_signer`.
        headers: extra HTTP headers (e.g. an API key).

    Returns:
        A ``pystac_client.Client``.
    """
    from pystac_client import Client
    from pystac_client.stac_api_io import StacApiIO

    modifier = make_signer(signer, url)

    def _open(attempt: int):
        io = StacApiIO(headers=headers, timeout=policy.timeout, max_retries=0)
        # Client.open passes its own timeout/headers to the io's update(): give them again, or None
        # would replace them and no request would ever time out
        return Client.open(url, modifier=modifier, stac_io=io, headers=headers, timeout=policy.timeout)

    return retry_call(_open, policy, what=f"opening STAC API {url}")


def search_point(
    client,
    collection: str,
    lon: float,
    lat: float,
    start: dt.date,
    end: dt.date,
    policy: RetryPolicy,
    max_items: int = 200,
) -> list:
    """Items of ``collection`` whose footprint holds (lon, lat), acquired in [start, end].

    Returns:
        ``pystac.Item`` list sorted by acquisition time.
    """
    when = f"{start.isoformat()}T00:00:00Z/{end.isoformat()}T23:59:59Z"

    def _search(attempt: int) -> list:
        search = client.search(
            collections=[collection],
            intersects={"type": "Point", "coordinates": [lon, lat]},
            datetime=when,
            max_items=max_items,
        )
        return list(search.items())

    items = retry_call(_search, policy, what=f"STAC search at ({lat:.5f}, {lon:.5f})")
    return sorted(items, key=item_datetime)


def item_datetime(item) -> dt.datetime:
    """Acquisition time of an item (``datetime`` or ``start_datetime``), timezone-aware UTC."""
    when = item.datetime or item.common_metadata.start_datetime
    if when is None:
        raise SenclipError(f"STAC item {item.id} has no datetime")
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)


def item_cloud_cover(item) -> float | None:
    """The item's ``eo:cloud_cover`` (percent of the scene), or ``None``."""
    value = item.properties.get("eo:cloud_cover")
    return None if value is None else float(value)


def find_asset(item, band: str) -> str | None:
    """Key of the asset holding Sentinel-2 band ``band`` (``B04``, ``SCL``, …), or ``None``.

    Tried in order: the key itself (``B04``), Earth Search's common name
    (``red``), the Copernicus Data Space per-resolution keys (``B04_10m``,
    ``B8A_20m``, ``SCL_20m``: the finest resolution offered), an ``eo:bands``
    (STAC 1.0) or ``bands`` (STAC 1.1) entry of that name.
    """
    keys = {k.lower(): k for k in item.assets}
    for name in (band, EARTH_SEARCH_KEYS.get(band.upper(), "")):
        if name and name.lower() in keys:
            return keys[name.lower()]
    per_res = []
    for low, key in keys.items():
        head, _, res = low.rpartition("_")
        if head == band.lower() and res.endswith("m") and res[:-1].isdigit():
            per_res.append((int(res[:-1]), key))
    if per_res:
        return min(per_res)[1]
    for key, asset in item.assets.items():
        for entry in (asset.extra_fields.get("eo:bands") or []) + (asset.extra_fields.get("bands") or []):
            if isinstance(entry, dict) and str(entry.get("name", "")).upper() == band.upper():
                return key
    return None


def asset_href(item, band: str) -> str:
    """The href of band ``band`` of ``item``.

    Raises:
        SenclipError: the item has no such band.
    """
    key = find_asset(item, band)
    if key is None:
        raise SenclipError(
            f"STAC item {item.id} has no asset for band {band} "
            f"(assets: {', '.join(sorted(item.assets))}); check --download-bands"
        )
    return item.assets[key].href


def item_epsg(item) -> int | None:
    """The item's ``proj:epsg`` (or ``proj:code`` ``EPSG:n``), or ``None``."""
    props = item.properties
    if props.get("proj:epsg"):
        return int(props["proj:epsg"])
    code = str(props.get("proj:code") or "")
    return int(code.split(":")[1]) if code.upper().startswith("EPSG:") else None
