"""Sentinel-2 band names and band lists: the one module that spells them.

Band names are the identity of channels everywhere (towers, checkpoints,
datasets and files are matched by name), so the lists, the parsing of user
band lists and the rule for inflating a tower live here, once. It sits at the
bottom of the package: it imports nothing of senclip but :mod:`senclip.errors`.
"""

from __future__ import annotations

from collections.abc import Sequence

from senclip.errors import SenclipError

S2_L1C_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
"""The 13 Sentinel-2 Level-1C bands, in the usual order."""

S2_L2A_BANDS = tuple(b for b in S2_L1C_BANDS if b != "B10")  # the 12 Level-2A bands (B10, cirrus, dropped)
RGB_BANDS = ("B04", "B03", "B02")  # red, green, blue: what a CLIP tower trained on photos takes
SHORTHANDS = {"L1C": S2_L1C_BANDS, "L2A": S2_L2A_BANDS, "RGB": RGB_BANDS}

SCL_UNUSABLE = (0, 1, 3, 8, 9, 10)
"""Scene-classification (SCL) classes that make a pixel unusable: no data, saturated, shadow, cloud
(medium, high), cirrus: the default mask of acquisition and compositing."""

REFERENCE_BGR_BANDS: tuple[str, ...] = ("B02", "B03", "B04")
"""The bands the SenCLIP reference code puts in a CLIP's R, G, B channels for BigEarthNet.

Source: ``src/dataset_bigearthnet.py`` of the SenCLIP code (repository
``yghlc/SenCLIP``), ``BigEarthNetDataset.__getitem__``: ``image =
np.asarray(image[1:4,:,:])`` on the image of ``torchgeo.datasets.BigEarthNet(...,
bands='s2')``, whose band files are sorted B01, B02, B03, B04, B05, B06, B07,
B08, B8A, B09, B11, B12 (torchgeo's ``sort_sentinel2_bands``), so channels 1..3
are B02, B03, B04; the array is then min-max stretched and handed to
``Image.fromarray(image, mode='RGB')``. The ``bands = [3,2,1]`` that its
``__init__`` stores is never used. ``src/zeroshot_bigearthnet.py`` evaluates on
this dataset. Blue therefore enters the red channel of a CLIP trained on RGB
photos, and red the blue one.
"""
RGB_ORDERS: dict[str, tuple[str, ...]] = {"rgb": RGB_BANDS, "reference-bgr": REFERENCE_BGR_BANDS}
"""``zeroshot --bigearthnet-rgb`` choices: the bands fed as R, G, B."""
STRETCHES = ("true-colour", "reference-minmax")
"""``zeroshot --bigearthnet-stretch`` choices: senclip's reflectance stretch, or the SenCLIP reference's
per-image min-max to 8 bit (:class:`senclip.data.bigearthnet.ReferenceMinMax`)."""

S2_COMMON_NAMES = {
    "B01": "coastal",
    "B02": "blue",
    "B03": "green",
    "B04": "red",
    "B05": "rededge",
    "B06": "rededge",
    "B07": "rededge",
    "B08": "nir",
    "B8A": "nir08",
    "B09": "nir09",
    "B10": "cirrus",
    "B11": "swir16",
    "B12": "swir22",
}
"""Sentinel-2 band -> ``eo:bands`` common name (the STAC eo extension's list, where the red edges share
one name); not the asset keys of a catalogue (:data:`senclip.acquire.stac.EARTH_SEARCH_KEYS`)."""
S2_WAVELENGTH_UM = {
    "B01": 0.443,
    "B02": 0.490,
    "B03": 0.560,
    "B04": 0.665,
    "B05": 0.705,
    "B06": 0.740,
    "B07": 0.783,
    "B08": 0.842,
    "B8A": 0.865,
    "B09": 0.945,
    "B10": 1.375,
    "B11": 1.610,
    "B12": 2.190,
}
"""Central wavelength (µm) of each Sentinel-2 MSI band (ESA's Sentinel-2 user handbook, S2A)."""


def parse_bands(spec: str | Sequence[str | int] | None, indexes: bool = False) -> tuple | None:
    """``"B04,B03,B02"``, ``L1C``/``L2A``/``RGB`` or a sequence → upper-case band names.

    ``indexes=True`` (``--input-bands``) also takes 1-based band indexes of a
    file without band descriptions: ``"4,3,2"`` → ``(4, 3, 2)``.
    """
    if spec is None:
        return None
    items = [str(s).strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if str(s).strip()]
    digits = [s.isdigit() for s in items]
    if indexes and items and all(digits):
        return tuple(int(s) for s in items)
    if indexes and not items:
        raise SenclipError("--input-bands is empty; give names (B04,B03,B02) or 1-based indexes (4,3,2)")
    if indexes and any(digits):
        raise SenclipError("--input-bands mixes names and indexes; give only names or only 1-based indexes")
    names = tuple(s.upper() for s in items)
    names = SHORTHANDS.get(names[0], names) if len(names) == 1 else names
    if not names:
        raise SenclipError("empty band list; give names such as B04,B03,B02 (or L1C, L2A, RGB)")
    if len(set(names)) != len(names):
        raise SenclipError(f"band list {','.join(names)} names a band twice")
    return names


def band_indices(available: Sequence[str], wanted: Sequence[str]) -> list[int]:
    """Positions in ``available`` of each band in ``wanted`` (by name); a missing band is an error."""
    upper = [str(a).upper() for a in available]
    missing = [b for b in wanted if str(b).upper() not in upper]
    if missing:
        raise SenclipError(f"band(s) {','.join(missing)} not found among "
                           f"{','.join(available) or 'no named bands'}; choose bands that the input has")
    return [upper.index(str(b).upper()) for b in wanted]


def needs_inflation(tower_bands: Sequence[str], wanted: Sequence[str] | None) -> bool:
    """The one rule (``create_model``, ``map``): inflate only when the band *sets* differ; inputs
    are matched by name, so the same bands in another order keep the tower as it is."""
    return wanted is not None and set(wanted) != set(tower_bands)
