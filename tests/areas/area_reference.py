"""The composite computed independently of senclip: numpy on the files the test catalogue serves.

Written for the tests from the fixture's own facts (which file holds the +1000 DN offset, which
file is which band), not from senclip's metadata rules: each item's band files are read from
disk, their offset removed when the file is an ``offset`` variant, pixels of masked SCL classes
and nodata dropped, each file sampled at the output grid's pixel centres (the source pixel that
holds the exact centre, computed with pyproj point by point), items of one day fused
(first kept pixel by item id), then ``np.nanmedian`` per band, rounded half up.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import rasterio
from pyproj import Transformer

MASKED = (0, 1, 3, 8, 9, 10)


def items_of(root: Path, catalogue: str, start: str, end: str) -> list[dict]:
    feats = json.loads((root / "stac" / f"{catalogue}.items.json").read_text())["features"]
    lo, hi = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
    return [f for f in feats if lo <= dt.date.fromisoformat(f["properties"]["datetime"][:10]) <= hi]


def band_file(root: Path, item: dict, band: str) -> Path:
    for asset in item["assets"].values():
        rel = asset["href"].split("?")[0].split("/", 3)[3]  # http://127.0.0.1:PORT/<rel>
        if rel.endswith(f"/{band}.tif"):
            return root / "assets" / rel
    raise KeyError(band)


def sample(path: Path, epsg: int, transform, shape) -> np.ndarray:
    """Nearest sampling of ``path`` at the centres of the output grid's pixels."""
    h, w = shape
    rows, cols = np.mgrid[0:h, 0:w]
    xs = transform.c + (cols + 0.5) * transform.a
    ys = transform.f + (rows + 0.5) * transform.e
    with rasterio.open(path) as src:
        data = src.read(1)
        sx, sy = Transformer.from_crs(epsg, src.crs.to_epsg(), always_xy=True).transform(xs, ys)
        c = np.floor((sx - src.transform.c) / src.transform.a).astype(int)
        r = np.floor((sy - src.transform.f) / src.transform.e).astype(int)
    ok = (r >= 0) & (r < data.shape[0]) & (c >= 0) & (c < data.shape[1])
    out = np.zeros(shape, dtype=np.int64)
    out[ok] = data[r[ok], c[ok]]
    return out


def observations(root: Path, items: list[dict], bands, epsg: int, transform, shape, masked=MASKED):
    """Per item: harmonised values (C, H, W) float with NaN where not kept; and the day."""
    obs = []
    for item in sorted(items, key=lambda f: f["id"]):
        vals = np.stack([sample(band_file(root, item, b), epsg, transform, shape) for b in bands]).astype(
            float
        )
        offset = 1000 if "/offset/" in str(band_file(root, item, bands[0])) else 0
        scl = sample(band_file(root, item, "SCL"), epsg, transform, shape)
        keep = (vals > 0).all(axis=0) & ~np.isin(scl, masked)
        vals = np.where(vals > 0, np.maximum(vals - offset, 1), 0)
        vals[:, ~keep] = np.nan
        obs.append((item["properties"]["datetime"][:10], item, vals))
    return obs


def fuse(obs) -> dict[str, np.ndarray]:
    days: dict[str, np.ndarray] = {}
    for day, _item, vals in obs:  # already in item-id order
        if day not in days:
            days[day] = vals.copy()
        else:
            hole = np.isnan(days[day][0])
            days[day][:, hole] = vals[:, hole]
    return days


def rounded_median(stack: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            med = np.nanmedian(stack, axis=0)
    return np.where(np.isnan(med), 0, np.floor(med + 0.5)).astype(np.uint16)


def composite(
    root: Path,
    catalogue: str,
    start: str,
    end: str,
    bands,
    epsg: int,
    transform,
    shape,
    inside: np.ndarray | None = None,
    masked=MASKED,
) -> np.ndarray:
    obs = observations(root, items_of(root, catalogue, start, end), bands, epsg, transform, shape, masked)
    days = fuse(obs)
    out = rounded_median(np.stack(list(days.values())))
    if inside is not None:
        out[:, ~inside] = 0
    return out


def first_valid(
    root: Path, catalogue: str, start: str, end: str, bands, epsg: int, transform, shape
) -> np.ndarray:
    obs = observations(root, items_of(root, catalogue, start, end), bands, epsg, transform, shape)
    order = sorted(
        obs, key=lambda o: (o[1]["properties"]["eo:cloud_cover"], o[1]["properties"]["datetime"], o[1]["id"])
    )
    out = np.full((len(bands), *shape), np.nan)
    for _day, _item, vals in order:
        hole = np.isnan(out[0])
        out[:, hole] = vals[:, hole]
    return np.where(np.isnan(out), 0, out).astype(np.uint16)


def monthly(root: Path, catalogue: str, year: int, bands, epsg: int, transform, shape) -> np.ndarray:
    """12 x (bands + QA): month medians, gaps filled with the median of the pixel's months; QA 1 where the
    month was seen, 2 where not (a pixel seen in some month), 0 for a pixel never seen."""
    obs = observations(
        root, items_of(root, catalogue, f"{year}-01-01", f"{year}-12-31"), bands, epsg, transform, shape
    )
    days = fuse(obs)
    months = np.full((12, len(bands), *shape), np.nan)
    for m in range(12):
        these = [v for d, v in days.items() if int(d[5:7]) == m + 1]
        if these:
            med = rounded_median(np.stack(these)).astype(float)
            med[:, med[0] == 0] = np.nan
            months[m] = med
    have = ~np.isnan(months[:, 0])
    seen = have.any(axis=0)
    fill = rounded_median(months).astype(float)
    out = []
    for m in range(12):
        vals = np.where(have[m][None], months[m], np.where(fill[0][None] > 0, fill, 0))
        qa = np.where(have[m], 1, np.where(seen, 2, 0))
        out += [np.nan_to_num(vals).astype(np.uint16), qa[None].astype(np.uint16)]
    return np.concatenate(out)
