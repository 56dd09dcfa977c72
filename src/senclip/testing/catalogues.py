"""Sentinel-2 L2A STAC items in the shapes of three real catalogues, over constant-reflectance COGs.

Written for senclip's tests from the catalogues' public documentation and published
items (not copied from a live API). Sources:

* **Earth Search v1** (Element 84, ``https://earth-search.aws.element84.com/v1``,
  collection ``sentinel-2-l2a``): item ids ``S2A_33UVP_20230610_0_L2A``; asset keys
  by common name (``blue``, ``green``, ``red``, ``nir``, ``nir08``, ``swir16``, ``scl``
  …) with ``eo:bands`` and ``raster:bands`` (``nodata 0``, ``uint16``,
  ``bits_per_sample 15``, ``scale 0.0001``, ``offset -0.1``); properties
  ``s2:processing_baseline`` and ``earthsearch:boa_offset_applied`` (``true`` where
  Element 84 already removed the BOA offset from the COGs; the ``raster:bands``
  offset stays -0.1). Described in the Earth Search v1 release notes and the
  eoreader discussion "Offset applying on Element84 products"
  (github.com/sertit/eoreader/discussions/120).
* **Microsoft Planetary Computer** (``https://planetarycomputer.microsoft.com/api/stac/v1``,
  collection ``sentinel-2-l2a``): item ids are product names
  (``S2A_MSIL2A_20230610T100601_R022_T33UVP_20230610T163403``); asset keys ``B02`` …
  ``B12``, ``SCL``; properties ``s2:processing_baseline``; hrefs on Azure Blob
  storage signed with a SAS token (``?st=…&se=…&sp=rl&sig=…``). From 04.00 the
  band assets carry ``raster:bands`` ``offset -0.1``, ``scale 0.0001`` (the
  Planetary Computer notebook "Adjusting for the Sentinel-2 Baseline Change",
  microsoft/PlanetaryComputerExamples#247).
* **Copernicus Data Space Ecosystem** (``https://stac.dataspace.copernicus.eu/v1``,
  collection ``sentinel-2-l2a``): one asset per band and resolution (``B04_10m``,
  ``B04_20m``, ``B8A_20m``, ``SCL_20m`` …), JPEG 2000 files under
  ``s3://eodata/Sentinel-2/MSI/L2A/…`` with an ``https`` alternate; raster
  extension v2 fields on the asset (``raster:scale``, ``raster:offset``, as the
  CDSE forum thread "STAC Raster Extension" describes); ``processing:version``
  holds the baseline (the CDSE item proposal, gist m-mohr/adba6a7f…).

Differences from the real items, so that the loopback servers can serve them:
every href is ``http://127.0.0.1:…`` (a CDSE href keeps its ``s3://`` original in
``alternate.s3``), the files are small GeoTIFFs (not JPEG 2000), and each catalogue is
its own collection (``earth-search``, ``planetary-computer``, ``cdse``); the real ids
are all ``sentinel-2-l2a``.

The COGs hold one constant reflectance per band (:data:`REFLECTANCE`), stored as
``reflectance * 10000`` (``plain``) or ``reflectance * 10000 + 1000`` (``offset``,
baseline ≥ 04.00 without the offset removed); SCL is 4 (vegetation) everywhere.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CATALOGUES = ("earth-search", "planetary-computer", "cdse")
REFLECTANCE = {"B02": 0.03, "B03": 0.045, "B04": 0.04, "B8A": 0.3}
"""Constant surface reflectance of each band of every test scene."""
BANDS_10M = ("B02", "B03", "B04")
BANDS_20M = ("B8A",)
EPSG = 32633
ORIGIN = (500000.0, 5200000.0)  # UTM 33N, about 15.0 E, 46.9 N
SIZE = 64  # 10 m pixels
ES_KEYS = {"B01": "coastal", "B02": "blue", "B03": "green", "B04": "red", "B05": "rededge1",
           "B06": "rededge2", "B07": "rededge3", "B08": "nir", "B8A": "nir08", "B09": "nir09",
           "B11": "swir16", "B12": "swir22", "SCL": "scl"}
"""Earth Search v1's asset keys (written out here, not imported: fixtures sit below the code they test)."""
SAS = "?st=2023-06-01T00%3A00%3A00Z&se=2023-06-02T00%3A00%3A00Z&sp=rl&sv=2021-06-08&sr=c&sig=TEST"


@dataclass(frozen=True)
class CatalogueScene:
    """One item: catalogue shape, date, baseline, what its COGs hold and its flag.

    Attributes:
        catalogue: one of :data:`CATALOGUES`.
        date: ``YYYY-MM-DD``.
        baseline: processing baseline (``"03.00"``, ``"05.09"``).
        values: ``"plain"`` (reflectance x 10000) or ``"offset"`` (+1000).
        flag: ``earthsearch:boa_offset_applied`` (Earth Search only; ``None``: absent).
        raster_offset: the band assets' stated offset (``None``: no raster metadata).
        suffix: distinguishes extra items of one date.
        tile: the MGRS tile in the item id and properties.
        platform: ``sentinel-2a`` or ``sentinel-2b`` (the id's ``S2A``/``S2B``).
        time: acquisition time of day (UTC).
        cloud_cover: ``eo:cloud_cover``.
    """

    catalogue: str
    date: str
    baseline: str
    values: str
    flag: bool | None = None
    raster_offset: float | None = None
    suffix: str = ""
    tile: str = "33TVN"
    platform: str = "sentinel-2a"
    time: str = "10:06:01.024000"
    cloud_cover: float = 1.5

    @property
    def item_id(self) -> str:
        d = self.date.replace("-", "")
        sat = "S2B" if self.platform.endswith("b") else "S2A"
        if self.catalogue == "earth-search":
            return f"{sat}_{self.tile}_{d}_0_L2A{self.suffix}"
        return (f"{sat}_MSIL2A_{d}T100601_N{self.baseline.replace('.', '')}_R022_T{self.tile}_{d}T163403"
                f"{self.suffix}")


def _scenes() -> list[CatalogueScene]:
    """Per catalogue: 2021, three 2022 scenes around the 25 January change, 2023 (as published)."""
    dates = [("2021-06-10", "03.00"), ("2022-01-10", "03.01"), ("2022-02-10", "04.00"),
             ("2022-03-10", "04.00"), ("2023-06-10", "05.09")]
    out = []
    for date, base in dates:
        new = float(base) >= 4.0
        # Earth Search: flag true on reprocessed items (offset removed), raster:bands state -0.1 always
        out.append(CatalogueScene("earth-search", date, base, "plain",
                                  flag=True if new else False, raster_offset=-0.1 if new else 0.0))
        out.append(CatalogueScene("planetary-computer", date, base, "offset" if new else "plain",
                                  raster_offset=-0.1 if new else None))
        out.append(CatalogueScene("cdse", date, base, "offset" if new else "plain",
                                  raster_offset=-0.1 if new else 0.0))
    return out


SCENES = _scenes()

# Items whose metadata is wrong or missing, for the journal/warning tests (collection "earth-search"):
WRONG_FLAG = CatalogueScene("earth-search", "2023-07-10", "05.09", "plain", flag=False, raster_offset=-0.1)
"""``earthsearch:boa_offset_applied: false`` on an item whose COGs had the offset removed."""
CONTRADICTORY = CatalogueScene("planetary-computer", "2023-07-10", "05.09", "offset", raster_offset=0.0)
"""Contradictory: baseline 05.09 (offset) but raster:bands state offset 0; the values hold the offset."""
MISSING_FLAG = CatalogueScene("earth-search", "2023-08-10", "05.09", "offset", flag=None, raster_offset=-0.1)
"""Earth Search item without ``earthsearch:boa_offset_applied`` whose COGs still hold the offset."""
EXTRA = (WRONG_FLAG, CONTRADICTORY, MISSING_FLAG)


def _cog(path: Path, value: int, res: float, dtype=np.uint16) -> None:
    import rasterio
    from affine import Affine

    n = int(SIZE * 10 / res)
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="GTiff", width=n, height=n, count=1, dtype=dtype,
                       crs=f"EPSG:{EPSG}", transform=Affine(res, 0, ORIGIN[0], 0, -res, ORIGIN[1]),
                       tiled=True, blockxsize=32, blockysize=32, compress="deflate") as dst:
        dst.write(np.full((n, n), value, dtype=dtype), 1)


def write_assets(folder: str | Path) -> Path:
    """``folder/plain/<band>.tif`` and ``folder/offset/<band>.tif`` (+ ``SCL.tif``)."""
    folder = Path(folder)
    for variant, add in (("plain", 0), ("offset", 1000)):
        for band, refl in REFLECTANCE.items():
            res = 10.0 if band in BANDS_10M else 20.0
            _cog(folder / variant / f"{band}.tif", round(refl * 10000) + add, res)
        _cog(folder / variant / "SCL.tif", 4, 20.0, np.uint8)
    return folder


def _footprint() -> tuple[dict, list[float]]:
    from rasterio.warp import transform

    x0, y1 = ORIGIN
    x1, y0 = x0 + SIZE * 10, y1 - SIZE * 10
    xs, ys = transform(f"EPSG:{EPSG}", "EPSG:4326", [x0, x1, x1, x0, x0], [y0, y0, y1, y1, y0])
    geom = {"type": "Polygon", "coordinates": [[[x, y] for x, y in zip(xs, ys, strict=True)]]}
    return geom, [min(xs), min(ys), max(xs), max(ys)]


def centre_lonlat() -> tuple[float, float]:
    """WGS84 lon/lat of the centre of the test scenes."""
    from rasterio.warp import transform

    xs, ys = transform(f"EPSG:{EPSG}", "EPSG:4326", [ORIGIN[0] + SIZE * 5], [ORIGIN[1] - SIZE * 5])
    return xs[0], ys[0]


def _raster_bands(scene: CatalogueScene, res: float) -> list[dict]:
    entry = {"nodata": 0, "data_type": "uint16", "bits_per_sample": 15, "spatial_resolution": res,
             "scale": 0.0001}
    if scene.raster_offset is not None:
        entry["offset"] = scene.raster_offset
    return [entry]


@dataclass(frozen=True)
class ItemFiles:
    """Where one item's files are and what grid they have (for :func:`shaped_item`).

    Attributes:
        epsg: the tile's UTM EPSG code.
        geometry, bbox: the footprint in WGS84 (GeoJSON polygon, ``[W, S, E, N]``).
        hrefs: band code (``B04``, ``SCL``) -> URL of its file, in asset order.
        res: band code -> pixel size in metres.
        grids: band code -> ``(shape, transform)`` written as ``proj:shape`` / ``proj:transform``
            (``None``: the items carry no per-asset grid, as older catalogue items).
    """

    epsg: int
    geometry: dict
    bbox: list[float]
    hrefs: dict[str, str]
    res: dict[str, float]
    grids: dict[str, tuple[tuple[int, int], list[float]]] | None = None


def _proj(files: ItemFiles, band: str) -> dict:
    if not files.grids:
        return {}
    shape, transform = files.grids[band]
    return {"proj:shape": list(shape), "proj:transform": list(transform)}


def shaped_item(scene: CatalogueScene, files: ItemFiles) -> dict:
    """The STAC item of ``scene`` in its catalogue's shape, over the files of ``files``."""
    props = {"datetime": f"{scene.date}T{scene.time}Z", "platform": scene.platform, "constellation":
             "sentinel-2", "instruments": ["msi"], "eo:cloud_cover": scene.cloud_cover,
             "proj:epsg": files.epsg}
    assets: dict[str, dict] = {}
    bands = [b for b in files.hrefs if b != "SCL"]
    zone = files.epsg % 100
    if scene.catalogue == "earth-search":
        props |= {"s2:processing_baseline": scene.baseline, "mgrs:utm_zone": zone,
                  "grid:code": f"MGRS-{scene.tile}",
                  "s2:product_uri": scene.item_id.replace("_0_L2A", "") + ".SAFE"}
        if scene.flag is not None:
            props["earthsearch:boa_offset_applied"] = scene.flag
        for band in bands:
            res = files.res[band]
            assets[ES_KEYS[band]] = {
                "href": files.hrefs[band],
                "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                "title": f"{ES_KEYS[band]} - {res:g}m", "roles": ["data", "reflectance"], "gsd": res,
                "eo:bands": [{"name": ES_KEYS[band], "common_name": ES_KEYS[band]}],
                "raster:bands": _raster_bands(scene, res), **_proj(files, band)}
        if "SCL" in files.hrefs:
            assets["scl"] = {"href": files.hrefs["SCL"], "type": "image/tiff; application=geotiff",
                             "roles": ["data"], "raster:bands": [{"nodata": 0, "data_type": "uint8",
                                                                  "spatial_resolution": 20}],
                             **_proj(files, "SCL")}
    elif scene.catalogue == "planetary-computer":
        props |= {"s2:processing_baseline": scene.baseline, "s2:mgrs_tile": scene.tile,
                  "s2:product_type": "S2MSI2A", "s2:datatake_type": "INS-NOBS"}
        for band in bands:
            res = files.res[band]
            asset = {"href": files.hrefs[band] + SAS, "type": "image/tiff; application=geotiff; "
                     "profile=cloud-optimized", "title": f"Band {band[1:]} - {res:g}m", "roles": ["data"],
                     "gsd": res, "eo:bands": [{"name": band, "common_name": ES_KEYS[band]}],
                     **_proj(files, band)}
            if scene.raster_offset is not None:
                asset["raster:bands"] = _raster_bands(scene, res)
            assets[band] = asset
        if "SCL" in files.hrefs:
            assets["SCL"] = {"href": files.hrefs["SCL"] + SAS, "type": "image/tiff; application=geotiff; "
                             "profile=cloud-optimized", "title": "Scene classfication map (SCL)",
                             "roles": ["data"], **_proj(files, "SCL")}
    else:
        props |= {"processing:version": scene.baseline, "product:type": "S2MSI2A",
                  "grid:code": f"MGRS-{scene.tile}"}
        s3 = f"s3://eodata/Sentinel-2/MSI/L2A/{scene.date.replace('-', '/')}/{scene.item_id}.SAFE"
        for band in bands:
            res = round(files.res[band])
            # only the native resolution is served here; the real items list 10, 20 and 60 m
            key = f"{band}_{res}m"
            asset = {"href": files.hrefs[band], "type": "image/jp2", "roles": ["data", "reflectance"],
                     "gsd": res, "title": f"{band} ({res}m)", "bands": [{"name": band}],
                     "alternate": {"s3": {"href": f"{s3}/GRANULE/IMG_DATA/R{res}m/{key}.jp2"}},
                     "nodata": 0, "data_type": "uint16", "raster:scale": 0.0001, **_proj(files, band)}
            if scene.raster_offset is not None:
                asset["raster:offset"] = scene.raster_offset
            assets[key] = asset
        if "SCL" in files.hrefs:
            assets["SCL_20m"] = {"href": files.hrefs["SCL"], "type": "image/jp2", "roles": ["data"],
                                 "gsd": 20, **_proj(files, "SCL"),
                                 "alternate": {"s3": {"href": f"{s3}/GRANULE/IMG_DATA/R20m/SCL_20m.jp2"}}}
    return {"type": "Feature", "stac_version": "1.0.0", "id": scene.item_id, "collection": scene.catalogue,
            "geometry": files.geometry, "bbox": files.bbox, "links": [], "assets": assets,
            "stac_extensions": [], "properties": props}


def item(scene: CatalogueScene, base_url: str) -> dict:
    """The STAC item of ``scene`` in its catalogue's shape, assets at ``base_url/<values>/``."""
    geom, bbox = _footprint()
    url = f"{base_url.rstrip('/')}/{scene.values}"
    bands = (*BANDS_10M, *BANDS_20M, "SCL")
    files = ItemFiles(EPSG, geom, bbox, {b: f"{url}/{b}.tif" for b in bands},
                      {b: 10.0 if b in BANDS_10M else 20.0 for b in bands})
    return shaped_item(scene, files)


def collection(cat: str) -> dict:
    """The collection document of catalogue shape ``cat`` (its id is the shape's name)."""
    return {"type": "Collection", "stac_version": "1.0.0", "id": cat, "license": "other",
            "description": f"Sentinel-2 L2A test items in the shape of {cat}", "links": [],
            "extent": {"spatial": {"bbox": [[-180.0, -90.0, 180.0, 90.0]]},
                       "temporal": {"interval": [[None, None]]}}}


def write_collections(out: str | Path, items: list[dict]) -> list[Path]:
    """One collection and one item file per catalogue shape under ``out``; returns the files to serve."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for cat in CATALOGUES:
        feats = [it for it in items if it["collection"] == cat]
        (out / f"{cat}.collection.json").write_text(json.dumps(collection(cat)), encoding="utf-8")
        (out / f"{cat}.items.json").write_text(json.dumps({"type": "FeatureCollection", "features": feats}),
                                               encoding="utf-8")
        files += [out / f"{cat}.collection.json", out / f"{cat}.items.json"]
    return files


def build_catalogues(out: str | Path, base_url: str,
                     scenes: list[CatalogueScene] | None = None) -> list[Path]:
    """Collections + items of every catalogue under ``out`` (for :class:`~senclip.testing.StacServer`).

    The assets must be served at ``base_url`` from :func:`write_assets`'s folder.
    Returns the JSON files to load: one collection and one item file per catalogue.
    """
    scenes = scenes if scenes is not None else [*SCENES, *EXTRA]
    return write_collections(out, [item(s, base_url) for s in scenes])


__all__ = ["CATALOGUES", "CONTRADICTORY", "EXTRA", "MISSING_FLAG", "REFLECTANCE", "SCENES", "WRONG_FLAG",
           "CatalogueScene", "ItemFiles", "build_catalogues", "centre_lonlat", "collection", "item",
           "shaped_item", "write_assets", "write_collections"]
