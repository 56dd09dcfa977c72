"""The composite layer: a Sentinel-2 composite (one season, or twelve months) in true colour.

Red, green and blue are found by name, never by position: a band is named by its description
(``B04``), its STAC Item's ``eo:bands`` (``name`` ``B04``, ``common_name`` ``red``) or its GDAL
colour interpretation (an RGB GeoTIFF); a composite without all three is refused in one line
(drawing near-infrared as green would show a map that is not there).

A monthly composite (the area pipeline's ``monthly-composite``: twelve months of the same bands
plus ``CLM``, month-major) repeats its band names; the k-th band of a name belongs to month k. The
page chooses the month (tile parameter ``month``, 1-based); it opens on the month with the fewest
pixels ``CLM`` flags as having no clear observation. What a ``CLM`` value means is read from the
file, not assumed: from the band's Item description (``"2022-01 no clear observation (1 =
filled)"``), its GeoTIFF description or the file's ``CLM`` tag, as ``<value> = <meaning>``; only
where none says, a non-zero value is taken as flagged (as the series readers take it).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import rasterio

from senclip.errors import SenclipError
from senclip.explore.errors import BadRequest, NotFound
from senclip.explore.layers import RasterLayer, empty_tile

RGB_NAMES = {"red": ("b04", "red"), "green": ("b03", "green"), "blue": ("b02", "blue")}
MASK_BAND = "clm"
PREVIEW = 1024
"""Longest side of the overview read for the default stretch and the months' CLM counts."""


def eo_bands(item) -> list:
    """The ``eo:bands`` of an Item's ``data`` asset (pystac ``Band`` objects; empty without them)."""
    from pystac.extensions.eo import EOExtension

    asset = item.assets.get("data") if item is not None else None
    if asset is None or not EOExtension.has_extension(item):
        return []
    return EOExtension.ext(asset).bands or []


def clm_rule(texts: list[str]) -> tuple[str, int]:
    """How to tell a flagged ``CLM`` pixel: ``("flagged", v)`` (== v), ``("clear", v)`` (!= v) or
    ``("nonzero", 0)``, from texts such as ``"1 = filled"`` or ``"1 = clear, 2 = gap"``."""
    clear = flagged = None
    for text in texts:
        for value, meaning in re.findall(r"(\d+)\s*=\s*([^,;()]+)", text or ""):
            meaning = meaning.lower()
            if any(w in meaning for w in ("fill", "gap", "no clear", "cloud", "invalid")):
                flagged = int(value) if flagged is None else flagged
            elif "clear" in meaning or "valid" in meaning:
                clear = int(value) if clear is None else clear
    if flagged is not None:
        return "flagged", flagged
    return ("clear", clear) if clear is not None else ("nonzero", 0)


class CompositeLayer(RasterLayer):
    """A composite in true colour with a linear stretch (default: 2nd-98th percentile of the month shown).

    Values are the file's with its GDAL scale and offset applied (reflectances for the area
    pipeline's composites). ``months``: one entry per month (a single-season composite has one).

    Raises:
        SenclipError: a band of red, green or blue missing (in any month).
    """

    smooth = True

    def __init__(self, path: str | Path, item=None) -> None:
        super().__init__(path, item)
        eo = eo_bands(item)
        self.labels = [self._labels(i, eo) for i in range(self.count)]
        keys = [(sorted(lab)[0] if lab else f"band {i + 1}") for i, lab in enumerate(self.labels)]
        month_of = [keys[:i].count(k) for i, k in enumerate(keys)]  # k-th band of a name: month k
        n = max(month_of) + 1
        self.rgb_by_month = [tuple(self._find(RGB_NAMES[c], month_of, m, keys) for c in RGB_NAMES)
                             for m in range(n)]
        masks = [self._band_of((MASK_BAND,), month_of, m) for m in range(n)]
        self.months = [{"month": m + 1, "label": self._month_label(m, month_of, eo)} for m in range(n)]
        if all(i is not None for i in masks):
            for entry, share in zip(self.months, self._flagged_shares(masks, eo), strict=True):
                entry["flagged"] = share
            self.month = 1 + int(np.argmin([e["flagged"] for e in self.months]))
        else:
            self.month = 1
        self.rgb = self.rgb_by_month[self.month - 1]
        self.stretch = self._default_stretch()

    def _labels(self, i: int, eo: list) -> set[str]:
        """Every name band ``i`` goes by (lower case): description, eo name and common name; only for a
        band named nowhere else, its GDAL colour interpretation (an RGB GeoTIFF)."""
        names = {self.descriptions[i]}
        if i < len(eo):
            names |= {eo[i].name, eo[i].common_name}
        names = {n.lower() for n in names if n}
        return names or ({self.colorinterp[i]} if self.colorinterp[i] in RGB_NAMES else set())

    def _band_of(self, names, month_of, month) -> int | None:
        for i, labels in enumerate(self.labels):
            if month_of[i] == month and labels & set(names):
                return i + 1
        return None

    def _find(self, names, month_of, month, keys) -> int:
        band = self._band_of(names, month_of, month)
        if band is None:
            have = ", ".join(dict.fromkeys(k.upper() for k in keys))
            months = f" in each of {max(month_of) + 1} months" if max(month_of) else ""
            raise SenclipError(f"{self.path}: a composite is drawn in true colour and needs red, green and "
                               f"blue bands (B04, B03, B02 by description or STAC eo:bands); its bands are "
                               f"{have}{months}")
        return band

    def _month_label(self, month: int, month_of, eo) -> str:
        dates = self.item.properties.get("senclip:dates") if self.item is not None else None
        if not dates and self.tags.get("dates"):
            dates = self.tags["dates"].split(",")
        if dates and len(dates) == max(month_of) + 1:
            return str(dates[month])[:7]
        first = month_of.index(month)
        found = re.match(r"\d{4}-\d{2}", eo[first].description or "") if first < len(eo) else None
        return found.group(0) if found else ("" if max(month_of) == 0 else f"month {month + 1}")

    def _flagged_shares(self, masks: list[int], eo: list) -> list[float]:
        """The share of each month's pixels flagged by its ``CLM`` band (on an overview)."""
        texts = [self.tags.get("CLM", "")]
        for band in masks:
            texts += [self.descriptions[band - 1] or ""]
            texts += [eo[band - 1].description or ""] if band - 1 < len(eo) else []
        rule, value = clm_rule(texts)
        with rasterio.open(self.path) as ds:
            step = max(1, -(-max(ds.shape) // PREVIEW))
            shape = (-(-ds.height // step), -(-ds.width // step))
            flags = ds.read(masks, out_shape=(len(masks), *shape), masked=False,
                            resampling=rasterio.enums.Resampling.nearest)
        flagged = flags == value if rule == "flagged" else flags != value if rule == "clear" else flags != 0
        if rule == "clear" and self.nodata is not None and self.nodata != value:
            flagged &= flags != self.nodata
        return [float(f.mean()) for f in flagged]

    def _default_stretch(self) -> tuple[float, float]:
        from rio_tiler.io import Reader

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Reader(str(self.path), options={"unscale": self.scaled}) as reader:
                img = reader.preview(indexes=self.rgb, max_size=PREVIEW)
        valid = img.array.compressed()
        valid = valid[np.isfinite(valid)]
        if valid.size == 0:
            return 0.0, 1.0
        lo, hi = (float(v) for v in np.percentile(valid, [2, 98]))
        return (lo, hi) if hi > lo else (lo, lo + 1.0)

    def check_month(self, month: int) -> None:
        if not 1 <= month <= len(self.months):
            raise NotFound(f"month {month} is not in the composite (1 to {len(self.months)})")

    def tile(self, z: int, x: int, y: int, lo: float | None = None, hi: float | None = None,
             month: int | None = None) -> bytes:
        lo = self.stretch[0] if lo is None else lo
        hi = self.stretch[1] if hi is None else hi
        month = self.month if month is None else month
        if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
            raise BadRequest(f"stretch min {lo} and max {hi}: give finite numbers with min < max")
        self.check_month(month)
        img = self.read_tile(z, x, y, indexes=self.rgb_by_month[month - 1], unscale=self.scaled)
        if img is None:
            return empty_tile()
        img.rescale(in_range=((lo, hi),) * 3)
        return img.render(img_format="PNG")

    def describe(self) -> dict:
        """The layer's options for the page: bands, stretch, months and the month shown first."""
        return {"file": self.path.name, "bands": list(self.rgb), "stretch": list(self.stretch),
                "months": self.months, "month": self.month, **self.extent()}
