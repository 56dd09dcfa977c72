"""Sentinel-2 band names and band lists: the one module that spells them.

Band names are the identity of channels everywhere in senclip: towers list
them (``tower.bands``), checkpoints store them, datasets and files are read by
them. Two kinds of band list come from users, and each command flag says which
it is: ``--model-bands`` (the bands an image tower takes; names only) and
``--input-bands`` (which bands of a file to read; names, or 1-based indexes
for files without band descriptions). Both accept the shorthands ``L1C``,
``L2A`` and ``RGB`` (:data:`SHORTHANDS`).

One rule decides when a tower must be given other bands
(:func:`needs_inflation`); both ``create_model`` and the mapping use it.
This module sits at the bottom of the package: it imports nothing of senclip
but :mod:`senclip.errors`.
"""

from __future__ import annotations

from collections.abc import Sequence

from senclip.errors import SenclipError

S2_L1C_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
"""The 13 Sentinel-2 Level-1C bands, in the usual order."""

S2_L2A_BANDS = tuple(b for b in S2_L1C_BANDS if b != "B10")
"""The 12 Sentinel-2 Level-2A bands (B10, cirrus, is dropped in L2A)."""

RGB_BANDS = ("B04", "B03", "B02")
"""Red, green and blue, in that order: the input of a CLIP tower trained on photos."""

SHORTHANDS = {"L1C": S2_L1C_BANDS, "L2A": S2_L2A_BANDS, "RGB": RGB_BANDS}
"""Names that stand for a whole band list when given alone."""


def parse_bands(spec: str | Sequence[str | int] | None, indexes: bool = False,
                flag: str = "--input-bands") -> tuple | None:
    """``"B04,B03,B02"``, a shorthand or a sequence → a tuple of upper-case band names.

    Args:
        spec: comma-separated text or a sequence; ``None`` passes through.
        indexes: also accept all-digit lists as 1-based band indexes of a
            file (``"4,3,2"`` → ``(4, 3, 2)``), as ``--input-bands`` does.
        flag: the flag named in errors about indexes.

    Raises:
        SenclipError: an empty list, a band named twice, or names mixed with indexes.
    """
    if spec is None:
        return None
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    items = [str(s).strip() for s in items if str(s).strip()]
    digits = [s.isdigit() for s in items]
    if indexes and items and all(digits):
        return tuple(int(s) for s in items)
    if indexes and not items:
        raise SenclipError(f"{flag} is empty; give names (B04,B03,B02) or 1-based indexes (4,3,2)")
    if indexes and any(digits):
        raise SenclipError(f"{flag} mixes names and indexes; give only names or only 1-based indexes")
    names = tuple(s.upper() for s in items)
    names = SHORTHANDS.get(names[0], names) if len(names) == 1 else names
    if not names:
        raise SenclipError("empty band list; give names such as B04,B03,B02 (or L1C, L2A, RGB)")
    if len(set(names)) != len(names):
        raise SenclipError(f"band list {','.join(names)} names a band twice")
    return names


def band_indices(available: Sequence[str], wanted: Sequence[str]) -> list[int]:
    """Positions in ``available`` of each band in ``wanted`` (matching by name).

    Raises:
        SenclipError: a wanted band is missing from ``available``.
    """
    upper = [str(a).upper() for a in available]
    missing = [b for b in wanted if str(b).upper() not in upper]
    if missing:
        raise SenclipError(
            f"band(s) {','.join(missing)} not found among {','.join(available) or 'no named bands'}; "
            "choose bands that the input has"
        )
    return [upper.index(str(b).upper()) for b in wanted]


def needs_inflation(tower_bands: Sequence[str], wanted: Sequence[str] | None) -> bool:
    """Whether a tower taking ``tower_bands`` must be inflated to take ``wanted``.

    Only when the band *sets* differ: inputs are matched by name, so the same
    bands in another order are read in the tower's order and the tower is
    kept as it is. ``wanted=None`` keeps the tower's bands.
    """
    return wanted is not None and set(wanted) != set(tower_bands)
