"""Sen4Map label sets, with the classes and texts of the TimeSenCLIP reference's zero-shot.

The newest reference zero-shot (``zeroshot.py`` -> ``src/Data/dataloader.py`` ->
``Sen4MapDataset_wImages_alllabels`` in ``src/Data/sen4map_data.py``, commit a48994f of
``pallavijain-pj/TimeSenCLIP``) takes each label set's classes, in order, from two files, and the
strings of its test list (``src/Data/labels_csv/Sen4Map_Test_all_labels.csv``) are these classes:

* ``lc1`` (8): ``class_list_lc`` of ``src/Data/lucas_label_mapping.py`` (8dfc8e6), by the LUCAS
  LC1 code's letter (A ... H);
* ``lu1`` (16): ``class_list_lu`` of the same file, by the LU1 code's first three characters;
* ``crop`` (40): ``crop_class_list`` of ``src/Data/lucas_class_mapping.py`` (a48994f), by the LC1
  cropland code (B11 ... B84), its spellings kept ("Nuts trees");
* ``bioregion`` (12): ``bio_class_list`` of ``lucas_class_mapping.py`` (``bioregion_mapping``, keyed
  0 ... 11), the European biogeographical regions;
* ``eunis`` (44): ``eunis_class_list`` of ``lucas_class_mapping.py`` (``eunis_mapping``, keyed
  0 ... 43), ecosystem types (EUNIS level-2 habitats), the paper's third task.

These strings are senclip's class keys; ``--protocol timesenclip`` prompts with them bare, as the
reference does. senclip's built-in prompt sets fill their templates with their own lower-case
wording (``name`` in ``senclip/prompts/data/sen4map.yaml``; docs/timeseries.md says why).

From a Sen4Map HDF5 group (:func:`label_of`): ``lc1``/``lu1``/``crop`` from the attributes ``lc1``
and ``lu1`` (LUCAS codes); ``bioregion`` from ``bioregion_class_code``, an index 0 ... 11 of the list
(the keys of ``bioregion_mapping``) or a class name; ``eunis`` from ``EUNIS_L2``, an index 0 ... 43, a
class name or a EUNIS level-2 code (:data:`EUNIS_L2_CODES`, e.g. ``E2`` for "Mesic grasslands"). The
reference's newest loader takes bioregion and EUNIS labels from its CSV only (its HDF5 reader returns
the raw attributes), so the attributes' encoding is not documented by it; a value of none of these
forms is refused, and ``--points`` (the CSV) gives the reference's labels.

Class keys were senclip's own lower-case wording before this release ("artificial land", "nut trees",
"recreation, leisure and sport", ...); :func:`user_class_key` still takes them in user prompt files.
"""

from __future__ import annotations

from senclip.errors import SenclipError

LC1_CLASSES = {  # LC1 letter -> class (lucas_label_mapping.py, class_mapping_lc)
    "A": "Artificial Land", "B": "Cropland", "C": "Woodland", "D": "Shrubland",
    "E": "Grassland", "F": "Bare Land", "G": "Water", "H": "Wetlands",
}
LU1_CLASSES = {  # LU1 code prefix -> class (lucas_label_mapping.py, class_mapping_lu)
    "U11": "Agriculture", "U12": "Forestry", "U13": "Aquaculture and Fishing",
    "U14": "Mining and Quarrying", "U15": "Other primary production", "U21": "Energy production",
    "U22": "Industry and Manufacturing",
    "U31": "Transport, Communication Networks, Storage, Protection Works",
    "U32": "Water and Waste Treatment", "U33": "Construction",
    "U34": "Commerce, Financial, Professional and Information Services", "U35": "Community services",
    "U36": "Recreation, Leisure, Sport", "U37": "Residential", "U41": "Abandoned areas",
    "U42": "Semi-natural and natural areas not in use",
}
CROP_CLASSES = {  # LC1 cropland code -> crop type (lucas_class_mapping.py, crop_labels)
    "B11": "Common wheat", "B12": "Durum wheat", "B13": "Barley", "B14": "Rye", "B15": "Oats",
    "B16": "Maize", "B17": "Rice", "B18": "Triticale", "B19": "Other cereals", "B21": "Potatoes",
    "B22": "Sugar beet", "B23": "Other root crops", "B31": "Sunflower", "B32": "Rape and turnip rape",
    "B33": "Soya", "B34": "Cotton", "B35": "Other fibre and oleaginous crops", "B36": "Tobacco",
    "B37": "Other non-permanent industrial crops", "B41": "Dry pulses", "B42": "Tomatoes",
    "B43": "Other fresh vegetables", "B44": "Floriculture and ornamental plants", "B45": "Strawberries",
    "B51": "Clovers", "B52": "Lucerne", "B53": "Other leguminous and mixtures for fodder",
    "B54": "Mix of cereals", "B55": "Temporary grassland", "B71": "Apple fruit", "B72": "Pear fruit",
    "B73": "Cherry fruit", "B74": "Nuts trees", "B75": "Other fruit trees and berries", "B76": "Oranges",
    "B77": "Other citrus fruit", "B81": "Olive groves", "B82": "Vineyards", "B83": "Nurseries",
    "B84": "Permanent industrial crops",
}
BIOREGION_CLASSES = (  # lucas_class_mapping.py, bioregion_mapping 0 ... 11
    "Alpine", "Anatolian", "Arctic", "Atlantic", "BlackSea", "Boreal", "Continental", "Macaronesia",
    "Mediterranean", "Outside", "Pannonian", "Steppic",
)
EUNIS_CLASSES = (  # lucas_class_mapping.py, eunis_mapping 0 ... 43
    "Arable land and market gardens", "Low density buildings", "Mesic grasslands",
    "Broadleaved deciduous woodland", "Coniferous woodland", "Temperate and mediterranean-montane scrub",
    "Seasonally wet and wet grasslands", "Surface running waters", "Buildings of cities, towns and villages",
    "Mixed deciduous and coniferous woodland", "Dry grasslands", "Arctic, alpine and subalpine scrub",
    "Alpine and subalpine grasslands", "Broadleaved evergreen woodland",
    "Lines of trees, small anthropogenic woodlands, recently felled woodland, early-stage woodland and "
    "coppice",
    "Shrub plantations", "Maquis, arborescent matorral and thermo-Mediterranean brushes",
    "Temperate shrub heathland", "Raised and blanket bogs",
    "Transport networks and other constructed hard-surfaced areas", "Extractive industrial sites",
    "Spiny Mediterranean heaths (phrygana, hedgehog-heaths and related coastal cliff vegetation)",
    "Surface standing waters", "Tundra", "Inland cliffs, rock pavements and outcrops", "Garrigue",
    "Aapa, palsa and polygon mires", "Cultivated areas of gardens and parks", "Waste deposits",
    "Miscellaneous inland habitats with very sparse or no vegetation", "Inland salt steppes",
    "Sparsely wooded grasslands", "Sedge and reedbeds, normally without free-standing water",
    "Valley mires, poor fens and transition mires", "Riverine and fen scrubs", "Screes",
    "Inland saline and brackish marshes and reedbeds", "Coastal dunes and sandy shores",
    "Littoral zone of inland surface waterbodies",
    "Highly artificial man-made waters and associated structures",
    "Base-rich fens and calcareous spring mires", "Snow or ice-dominated habitats",
    "Rock cliffs, ledges and shores, including the supralittoral", "Coastal shingle",
)
EUNIS_L2_CODES = {  # EUNIS habitat classification (EEA, 2012 version), level 2: code -> name
    "B1": "Coastal dunes and sandy shores", "B2": "Coastal shingle",
    "B3": "Rock cliffs, ledges and shores, including the supralittoral",
    "C1": "Surface standing waters", "C2": "Surface running waters",
    "C3": "Littoral zone of inland surface waterbodies",
    "D1": "Raised and blanket bogs", "D2": "Valley mires, poor fens and transition mires",
    "D3": "Aapa, palsa and polygon mires", "D4": "Base-rich fens and calcareous spring mires",
    "D5": "Sedge and reedbeds, normally without free-standing water",
    "D6": "Inland saline and brackish marshes and reedbeds",
    "E1": "Dry grasslands", "E2": "Mesic grasslands", "E3": "Seasonally wet and wet grasslands",
    "E4": "Alpine and subalpine grasslands", "E6": "Inland salt steppes", "E7": "Sparsely wooded grasslands",
    "F1": "Tundra", "F2": "Arctic, alpine and subalpine scrub",
    "F3": "Temperate and mediterranean-montane scrub", "F4": "Temperate shrub heathland",
    "F5": "Maquis, arborescent matorral and thermo-Mediterranean brushes", "F6": "Garrigue",
    "F7": "Spiny Mediterranean heaths (phrygana, hedgehog-heaths and related coastal cliff vegetation)",
    "F9": "Riverine and fen scrubs", "FB": "Shrub plantations",
    "G1": "Broadleaved deciduous woodland", "G2": "Broadleaved evergreen woodland",
    "G3": "Coniferous woodland", "G4": "Mixed deciduous and coniferous woodland",
    "G5": "Lines of trees, small anthropogenic woodlands, recently felled woodland, early-stage woodland and "
          "coppice",
    "H2": "Screes", "H3": "Inland cliffs, rock pavements and outcrops",
    "H4": "Snow or ice-dominated habitats",
    "H5": "Miscellaneous inland habitats with very sparse or no vegetation",
    "I1": "Arable land and market gardens", "I2": "Cultivated areas of gardens and parks",
    "J1": "Buildings of cities, towns and villages", "J2": "Low density buildings",
    "J3": "Extractive industrial sites", "J4": "Transport networks and other constructed hard-surfaced areas",
    "J5": "Highly artificial man-made waters and associated structures", "J6": "Waste deposits",
}
"""The EUNIS level-2 code of each of the 44 ``eunis`` classes: the reference's names are the EEA's
level-2 habitat names, word for word (EUNIS habitat classification 2012, as the EEA lists it, e.g.
its data dictionary's ``EUNIS_Hab`` values and eunis.eea.europa.eu). Level-2 habitats the reference
has no class for (E5, F8, FA, H1, H6 and the marine A1 ... A8) are not here."""
EUNIS_OTHER_L2 = ("E5", "F8", "FA", "H1", "H6")
"""Terrestrial level-2 codes without a class in the reference's list (refused by name in errors)."""
PREVIOUS_KEYS = {
    "transport, communication networks, storage and protection works":
        "Transport, Communication Networks, Storage, Protection Works",
    "recreation, leisure and sport": "Recreation, Leisure, Sport",
    "nut trees": "Nuts trees",
}
"""senclip's class keys before they became the reference's strings, where they differ by more than
case (all others: the same words in lower case); :func:`user_class_key` maps them."""
LABEL_SETS = ("lc1", "lu1", "crop", "eunis", "bioregion")
_TABLES = {"lc1": tuple(LC1_CLASSES.values()), "lu1": tuple(LU1_CLASSES.values()),
           "crop": tuple(CROP_CLASSES.values()), "eunis": EUNIS_CLASSES, "bioregion": BIOREGION_CLASSES}
ATTRIBUTES = {"eunis": "EUNIS_L2", "bioregion": "bioregion_class_code"}
"""HDF5 attribute of the label sets that are not read from LUCAS codes."""


def label_classes(labels: str) -> list[str]:
    """The class names of a label set, in label order."""
    table = _TABLES.get(labels)
    if table is None:
        raise SenclipError(f"unknown Sen4Map label set {labels!r}; choose one of {', '.join(LABEL_SETS)}")
    return list(table)


def attr_text(value) -> str:
    """An HDF5 attribute as text (bytes decoded, one-element arrays unwrapped)."""
    import numpy as np

    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray) and value.size == 1:
        return attr_text(value.reshape(()).item())
    return str(value)


def class_index(labels: str, value) -> int:
    """Index of a class given by name (exact, else case-insensitive), for ``eunis``/``bioregion`` by its
    index in the published mapping, for ``eunis`` by its EUNIS level-2 code; :class:`ValueError`
    otherwise."""
    classes = label_classes(labels)
    text = attr_text(value).strip()
    if text in classes:
        return classes.index(text)
    lower = {c.lower(): i for i, c in enumerate(classes)}
    if text.lower() in lower:
        return lower[text.lower()]
    if labels in ATTRIBUTES and text.lstrip("-").isdigit() and 0 <= int(text) < len(classes):
        return int(text)
    code = text.upper()
    if labels == "eunis" and code in EUNIS_L2_CODES:
        return classes.index(EUNIS_L2_CODES[code])
    marine = len(code) == 2 and code[0] == "A" and code[1].isdigit()
    if labels == "eunis" and (code in EUNIS_OTHER_L2 or marine):
        raise ValueError(f"{text!r} is a EUNIS level-2 habitat without a class among the reference's 44")
    forms = {"eunis": ", an index 0 ... 43 or a EUNIS level-2 code such as E2",
             "bioregion": f" or an index 0 ... {len(classes) - 1}"}.get(labels, "")
    raise ValueError(f"{text!r} is not a {labels} class (one of the {len(classes)} names{forms})")


def user_class_key(key: str, classes) -> str | None:
    """The class of ``classes`` a user prompt file means by ``key``: itself, the same words in another
    case, or a previous senclip key (:data:`PREVIOUS_KEYS`); ``None`` if none."""
    if key in classes:
        return key
    text = key.strip().lower()
    match = {c.lower(): c for c in classes}.get(text) or PREVIOUS_KEYS.get(text)
    return match if match in classes else None


def label_of(labels: str, attrs) -> int | None:
    """Class index of a point from its HDF5 attributes (``None``: not in a ``crop`` set);
    :class:`ValueError` for an unknown code or value."""
    if labels in ATTRIBUTES:
        key = ATTRIBUTES[labels]
        if key not in attrs:
            raise ValueError(f"no '{key}' attribute")
        try:
            return class_index(labels, attrs[key])
        except ValueError as exc:
            raise ValueError(f"{key} {exc}; the reference's labels come from its test list: "
                             "--points TEST.csv") from None
    key = "lu1" if labels == "lu1" else "lc1"
    if labels not in _TABLES:
        label_classes(labels)
    if key not in attrs:
        raise ValueError(f"no '{key}' attribute")
    code = attr_text(attrs[key]).strip().upper()
    if labels == "lc1":
        table, token = LC1_CLASSES, code[:1]
        if len(code) < 2:
            token = ""
    elif labels == "lu1":
        table, token = LU1_CLASSES, code[:3]
    else:
        if code[:1] in LC1_CLASSES and code not in CROP_CLASSES and len(code) >= 2:
            return None  # another land cover: not a crop point
        table, token = CROP_CLASSES, code
    if token not in table:
        raise ValueError(f"unknown {key} code {code!r}")
    return list(table).index(token)


__all__ = ["ATTRIBUTES", "BIOREGION_CLASSES", "CROP_CLASSES", "EUNIS_CLASSES", "EUNIS_L2_CODES", "LABEL_SETS",
           "LC1_CLASSES", "LU1_CLASSES", "PREVIOUS_KEYS", "attr_text", "class_index", "label_classes",
           "label_of", "user_class_key"]
