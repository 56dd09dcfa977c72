"""Which BOA offset a Sentinel-2 L2A STAC item's assets carry, and how chips are harmonised.

Processing baseline 04.00 and later (from 25 January 2022) store L2A values with a
``BOA_ADD_OFFSET`` of -1000 DN: reflectance = (DN - 1000) / 10000. Catalogues
describe this differently, so the decision is made per item (and per band asset)
from, in this order (:data:`DECISION_TABLE`):

====  ==============================================  ==========================================
rule  metadata                                        BOA offset in the asset values (DN)
====  ==============================================  ==========================================
1     ``earthsearch:boa_offset_applied: true``        0 (Earth Search removed it; its
                                                      ``raster:bands`` still state -0.1)
2     a processing baseline                           1000 if ≥ 04.00, else 0
      (``s2:processing_baseline``,
      ``processing:version``)
3     no baseline: the band asset's ``raster:bands``  ``-offset / scale`` (-0.1 / 0.0001 = 1000)
      offset/scale (or ``raster:offset``/``raster:scale``)
4     none of the above                               1000 if acquired on/after 2022-01-25, else 0
                                                      (with a warning)
====  ==============================================  ==========================================

The baseline is part of the product name (``N0400``) and is the surest fact;
``earthsearch:boa_offset_applied: false`` adds nothing to it. When the sources
disagree (an asset offset contradicting the baseline, a flag ``true`` on a
baseline without offset) the first rule that applies wins and a warning is
recorded (printed once per item, kept in the journal). A baseline ≥ 04.00
before 2022-01-25 (a reprocessed archive) is no contradiction: the baseline
counts, not the date.

Then a **data check** guards against wrong flags: if an offset of 1000 was
decided but at least half of the valid pixels of some band hold values below
500 (reflectance below -0.05 if the offset were there), the values cannot carry
the offset, so it is *not* removed and ``check: "offset-not-in-data"`` is
recorded with a warning.

Harmonised output (the default, ``--radiometry harmonised``): uint16, values =
reflectance x 10,000 with the offset removed, nodata 0; valid pixels whose
reflectance would be ≤ 0 are clamped to 1, so nodata stays distinct from dark
pixels. ``--radiometry raw`` keeps the provider's DN and records the offset as
GDAL ``offset = -offset_dn x 1e-4`` so that readers still get reflectance.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

import numpy as np

from senclip.data.radiometry import BOA_ADD_OFFSET_DN, CONVENTION, RAW, REFLECTANCE_SCALE, convention_tags
from senclip.errors import SenclipError

log = logging.getLogger("senclip.acquire")

MODES = (CONVENTION, RAW)
BASELINE_04_DATE = dt.date(2022, 1, 25)
"""First acquisitions processed with baseline 04.00."""
BASELINE_KEYS = ("s2:processing_baseline", "processing:version", "sentinel2:processing_baseline")
FLAG_KEY = "earthsearch:boa_offset_applied"
SUSPECT_SHARE = 0.5
"""Share of a band's valid pixels below half the offset above which the offset is taken to be absent."""

DECISION_TABLE = (
    ("flag", "earthsearch:boa_offset_applied is true", "0"),
    ("baseline", "s2:processing_baseline or processing:version", "1000 if >= 04.00 else 0"),
    ("asset", "no baseline: raster:bands offset/scale of the band asset (or raster:offset)",
     "-offset/scale"),
    ("date", "no radiometry metadata: acquisition date", "1000 if on/after 2022-01-25 else 0"),
)
"""(source, metadata read, offset in DN) in the order the rules apply."""


@dataclass
class Decision:
    """The BOA offset of one item's band assets, and why.

    Attributes:
        offset_dn: DN to subtract from each band's values (``{band: 0 or 1000}``).
        source: the rule that decided (``flag``, ``asset``, ``baseline``, ``date``).
        baseline: the processing baseline, if the item states one.
        flag: ``earthsearch:boa_offset_applied``, if present.
        warnings: disagreements between the metadata (one line each).
        check: ``None``, or ``"offset-not-in-data"`` when the data check overruled the metadata.
    """

    offset_dn: dict[str, int]
    source: str
    baseline: str | None = None
    flag: bool | None = None
    warnings: list[str] = field(default_factory=list)
    check: str | None = None

    @property
    def offset(self) -> int:
        """The offset in DN when all bands agree (the usual case), else the largest."""
        return max(self.offset_dn.values(), default=0)

    def record(self, mode: str) -> dict:
        """The journal entry of this decision."""
        rec = {"mode": mode, "offset_dn": self.offset, "source": self.source, "baseline": self.baseline,
               "flag": self.flag}
        if len(set(self.offset_dn.values())) > 1:
            rec["offset_dn_per_band"] = dict(self.offset_dn)
        if self.warnings:
            rec["warnings"] = list(self.warnings)
        if self.check:
            rec["check"] = self.check
        return rec

    def tags(self, mode: str) -> dict[str, str]:
        """GeoTIFF tags of a chip written in ``mode``."""
        return convention_tags(mode, self.offset, self.source, self.baseline)


def _baseline(props: dict) -> tuple[str | None, float | None]:
    for key in BASELINE_KEYS:
        value = props.get(key)
        if value not in (None, ""):
            try:
                return str(value), float(str(value).lstrip("N"))
            except ValueError:
                return str(value), None
    return None, None


def _flag(props: dict) -> bool | None:
    value = props.get(FLAG_KEY)
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def asset_offset_dn(asset) -> int | None:
    """The BOA offset in DN stated by an asset's raster metadata, or ``None`` when it states none.

    Reads ``raster:bands[0]`` ``offset``/``scale`` (raster extension v1) or the
    asset's own ``raster:offset``/``raster:scale`` (v2). An offset without a
    scale is taken with scale 1e-4.
    """
    extra = getattr(asset, "extra_fields", asset if isinstance(asset, dict) else {}) or {}
    bands = extra.get("raster:bands") or []
    entry = bands[0] if bands and isinstance(bands[0], dict) else {}
    offset = entry.get("offset", extra.get("raster:offset"))
    scale = entry.get("scale", extra.get("raster:scale"))
    if offset is None:
        return None
    scale = float(scale) if scale else REFLECTANCE_SCALE
    return round(-float(offset) / scale)


def decide(item, bands: tuple[str, ...]) -> Decision:
    """Apply :data:`DECISION_TABLE` to ``item`` for the assets of ``bands``."""
    from senclip.acquire.stac import find_asset, item_datetime

    props = dict(item.properties)
    text, baseline = _baseline(props)
    flag = _flag(props)
    when = item_datetime(item).date()
    assets = {b: item.assets[k] for b in bands if (k := find_asset(item, b)) is not None}
    stated = {b: asset_offset_dn(a) for b, a in assets.items()}
    warnings = []
    by_baseline = None if baseline is None else (BOA_ADD_OFFSET_DN if baseline >= 4.0 else 0)
    # a baseline >= 04.00 before 2022-01-25 is a reprocessed archive (e.g. Collection-1, 05.00): the
    # baseline, not the date, decides
    known = [v for v in stated.values() if v is not None]
    if flag:  # Earth Search removed the offset from the COGs; its raster:bands still state -0.1
        source, offsets = "flag", dict.fromkeys(bands, 0)
        if baseline is not None and by_baseline == 0:
            warnings.append(f"{FLAG_KEY} is true but processing baseline {text} has no offset to remove")
    elif by_baseline is not None:  # the baseline is part of the product name (N0400): the surest fact
        source, offsets = "baseline", dict.fromkeys(bands, by_baseline)
        if known and max(known) != by_baseline:
            warnings.append(f"asset raster metadata states an offset of {max(known)} DN but processing "
                            f"baseline {text} implies {by_baseline}; trusting the baseline")
    elif known:
        source = "asset"
        offsets = {b: (stated[b] if stated.get(b) is not None else max(known)) for b in bands}
    else:
        by_date = BOA_ADD_OFFSET_DN if when >= BASELINE_04_DATE else 0
        source, offsets = "date", dict.fromkeys(bands, by_date)
        warnings.append(f"no radiometry metadata (no {FLAG_KEY}, raster:bands offset or processing "
                        f"baseline); assumed an offset of {by_date} DN from the date {when}")
    return Decision(offsets, source, text, flag, warnings)


def check_data(data: np.ndarray, decision: Decision, bands: tuple[str, ...]) -> Decision:
    """Overrule an offset that the values cannot hold (a wrong flag or wrong metadata).

    ``data``: the raw (C, H, W) values in ``bands`` order; 0 = nodata. When, in
    some band with an offset, at least :data:`SUSPECT_SHARE` of the valid pixels
    are below half the offset (reflectance below -0.05 if the offset were
    there: not physical, even over water, where values sit near the offset),
    the values evidently do not carry it: the offset is dropped (set to 0) with
    a warning and ``check = "offset-not-in-data"``.
    """
    shares = {}
    for i, band in enumerate(bands):
        off = decision.offset_dn.get(band, 0)
        v = data[i][data[i] != 0]
        if off > 0 and v.size:
            shares[band] = float((v < off / 2).mean())
    if shares and max(shares.values()) >= SUSPECT_SHARE:
        band = max(shares, key=shares.get)
        decision.warnings.append(
            f"{shares[band]:.0%} of the valid {band} pixels are below half the {decision.offset} DN offset "
            f"decided from '{decision.source}': the values cannot carry it, so it was not removed "
            "(wrong metadata?)")
        decision.offset_dn = dict.fromkeys(decision.offset_dn, 0)
        decision.check = "offset-not-in-data"
    return decision


def harmonise(data: np.ndarray, decision: Decision, bands: tuple[str, ...]) -> np.ndarray:
    """Raw (C, H, W) DN → uint16 harmonised DN: offset removed, nodata 0 kept, valid pixels ≥ 1."""
    if data.dtype == np.uint16:  # the usual input, no int64 copy: max(v, off+1) - off = clip(v - off, 1)
        out = data.copy()
        for i, band in enumerate(bands):
            off = decision.offset_dn.get(band, 0)
            if off > 0:
                v = out[i]
                np.copyto(v, np.maximum(v, np.uint16(off + 1)) - np.uint16(off), where=v != 0)
        return out
    out = data.astype(np.int64)
    for i, band in enumerate(bands):
        off = decision.offset_dn.get(band, 0)
        valid = out[i] != 0
        out[i] = np.where(valid, np.clip(out[i] - off, 1, 65535), 0)
    return out.astype(np.uint16)


def harmonise_float(data: np.ndarray, decision: Decision, bands: tuple[str, ...]) -> np.ndarray:
    """Like :func:`harmonise` but float32 (for series composites): NaN stays NaN, 0 stays 0."""
    out = data.astype(np.float32)
    for i, band in enumerate(bands):
        off = decision.offset_dn.get(band, 0)
        valid = out[i] != 0
        out[i] = np.where(valid, np.maximum(out[i] - off, 1.0), out[i])
    return out


def gdal_scaling(decision: Decision, mode: str, bands: tuple[str, ...]) -> tuple[list[float], list[float]]:
    """GDAL per-band (scales, offsets) of a chip written in ``mode``."""
    scales = [REFLECTANCE_SCALE] * len(bands)
    if mode == CONVENTION:
        return scales, [0.0] * len(bands)
    return scales, [-decision.offset_dn.get(b, 0) * REFLECTANCE_SCALE for b in bands]


def file_decision(src, bands: tuple[str, ...], offset_dn: int | None = None) -> Decision:
    """The BOA offset held by an existing chip (open rasterio dataset), for ``senclip harmonise``.

    In order: a chip already tagged ``radiometry=harmonised`` holds none; GDAL
    per-band offsets (``--radiometry raw`` chips, provider files) give
    ``-offset / scale``; ``offset_dn`` (``--offset-dn``) when given; the
    ``processing_baseline`` tag; the ``acquired`` tag (chips written by
    ``acquire`` before harmonisation existed) by date, with a warning.
    ``offset_dn`` overrides the tags and the GDAL metadata, with a warning when
    it disagrees with them.

    Raises:
        SenclipError: nothing tells the offset and ``offset_dn`` is not given.
    """
    from senclip.data.radiometry import file_scaling

    tags = src.tags()
    found: tuple[int, str, str | None] | None = None
    scaling = file_scaling(src)
    if tags.get("radiometry") == CONVENTION:
        found = (0, "file", tags.get("processing_baseline"))
    elif scaling is not None:
        scales, offsets = scaling
        if not np.allclose(scales, REFLECTANCE_SCALE):
            raise SenclipError(f"{src.name}: GDAL scale {scales.tolist()} is not 0.0001; not Sentinel-2 DN")
        found = (round(-float(offsets.min()) / REFLECTANCE_SCALE), "gdal-offset",
                 tags.get("processing_baseline"))
    elif tags.get("processing_baseline") not in (None, "", "unknown"):
        text = tags["processing_baseline"]
        found = (BOA_ADD_OFFSET_DN if float(text) >= 4.0 else 0, "baseline", text)
    warnings = []
    if offset_dn is not None:
        if found is not None and found[0] != offset_dn:
            warnings.append(f"--offset-dn {offset_dn} overrides the {found[0]} DN stated by the file "
                            f"({found[1]})")
        found = (offset_dn, "option", found[2] if found else None)
    if found is None and tags.get("acquired"):
        when = dt.date.fromisoformat(tags["acquired"][:10])
        off = BOA_ADD_OFFSET_DN if when >= BASELINE_04_DATE else 0
        found = (off, "date", None)
        warnings.append(f"no radiometry metadata; assumed an offset of {off} DN from the acquisition date "
                        f"{when} (pass --offset-dn to state it)")
    if found is None:
        raise SenclipError(f"{src.name}: no radiometry metadata (GDAL offset, processing_baseline or "
                           "acquired tag); pass --offset-dn 0 (before 25 January 2022) or 1000")
    return Decision(dict.fromkeys(bands, found[0]), found[1], found[2], None, warnings)


def harmonise_file(path, out, offset_dn: int | None = None) -> dict:
    """Write the harmonised copy of chip ``path`` to ``out`` (atomically); returns what was done.

    The chip keeps its grid, bands, descriptions and tags; its values become
    reflectance x 10000 with the offset removed (uint16, nodata 0, valid
    pixels >= 1), with GDAL scale 0.0001 / offset 0 and the radiometry tags.
    """
    import rasterio

    from senclip.outputs import atomic_path

    with rasterio.open(path) as src:
        if np.dtype(src.dtypes[0]).kind not in "ui" or np.dtype(src.dtypes[0]) == np.uint8:
            raise SenclipError(f"{path}: {src.dtypes[0]} values are not Sentinel-2 digital numbers "
                               "(uint16 expected); nothing to harmonise")
        bands = tuple(d or f"band{i + 1}" for i, d in enumerate(src.descriptions))
        decision = file_decision(src, bands, offset_dn)
        data = src.read()
        profile, tags = src.profile, src.tags()
        masks = src.nodata
    if decision.source != "file":
        decision = check_data(data, decision, bands)
        data = harmonise(data, decision, bands)
    profile.update(dtype="uint16", nodata=0 if masks is None else masks, compress="deflate", predictor=2)
    scales, offsets = gdal_scaling(decision, CONVENTION, bands)
    tags |= decision.tags(CONVENTION)
    with atomic_path(out) as tmp:
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(data)
            for i, band in enumerate(bands, start=1):
                dst.set_band_description(i, band)
            dst.update_tags(**tags)
            dst.scales, dst.offsets = tuple(scales), tuple(offsets)
    return {"input": str(path), "output": str(out), **decision.record(CONVENTION)}


def check_mode(mode: str) -> str:
    """Validate ``--radiometry``."""
    if mode not in MODES:
        raise SenclipError(f"unknown --radiometry {mode!r}; choose one of {', '.join(MODES)}")
    return mode


_WARNED: set[str] = set()


def warn(item_id: str, decision: Decision) -> None:
    """Print the decision's warnings, one line each (``warning: item …: …``), once per item and text."""
    import sys

    for w in decision.warnings:
        line = f"warning: item {item_id}: {w}"
        if line in _WARNED:
            continue
        _WARNED.add(line)
        log.warning(line)
        print(line, file=sys.stderr)


__all__ = ["DECISION_TABLE", "MODES", "Decision", "asset_offset_dn", "check_data", "check_mode", "decide",
           "file_decision", "gdal_scaling", "harmonise", "harmonise_file", "harmonise_float", "warn"]
