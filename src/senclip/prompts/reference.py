"""The SenCLIP reference code's prompt conventions (``--protocol senclip``).

Facts taken from the published SenCLIP evaluation scripts (``src/zeroshot.py``,
``src/zeroshot_bigearthnet.py`` of the SenCLIP code):

* EuroSAT folder names are replaced by display names before prompting
  (:data:`CLASS_NAMES`); BigEarthNet-19 classes keep their nomenclature names;
* prompt files are JSON ``{display name: [sentence, ...]}`` (a list of
  templates with ``{}`` is formatted with each display name).

:func:`senclip.prompts.schema.read_prompt_file` reads such a document as a
:class:`~senclip.prompts.schema.PromptFile` whose one style is
``sentences``; :func:`to_dataset_keys` renames its display names to the
dataset's class keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from senclip.errors import SenclipError
from senclip.prompts.schema import REFERENCE_STYLE, ClassPrompts

__all__ = ["CLASS_NAMES", "REFERENCE_STYLE", "display_names", "to_dataset_keys"]

_EUROSAT = {
    "AnnualCrop": "Annual Crop Land", "Forest": "Forest",
    "HerbaceousVegetation": "Herbaceous Vegetation Land", "Highway": "Highway or Road",
    "Industrial": "Industrial Buildings", "Pasture": "Pasture Land",
    "PermanentCrop": "Permanent Crop Land", "Residential": "Residential Buildings",
    "River": "River", "SeaLake": "Sea or Lake",
}
CLASS_NAMES: dict[str, dict[str, str]] = {"eurosat": _EUROSAT, "eurosat-ms": _EUROSAT}
"""Dataset -> {class key: display name} of the reference scripts (datasets not listed keep their keys)."""


def display_names(dataset: str, classes: Sequence[str]) -> dict[str, str]:
    """Class key -> the name the reference scripts prompt with."""
    table = CLASS_NAMES.get(dataset.lower(), {})
    return {c: table.get(c, c) for c in classes}


def to_dataset_keys(pfile, classes: Sequence[str], dataset: str):
    """Rename a reference file's display names to the dataset's class keys.

    A template list gets one entry per class, named by its display name. A key that is
    already a class key is kept; anything else stays as it is (and is reported as an
    unknown class by :func:`senclip.prompts.load_prompts`).
    """
    names = display_names(dataset, classes)
    if not pfile.classes:  # template list
        return replace(pfile, classes={c: ClassPrompts(key=c, name=names[c]) for c in classes})
    by_name = {n: c for c, n in names.items()}
    out = {}
    for key, entry in pfile.classes.items():
        cls = key if key in names else by_name.get(key, key)
        if cls in out:
            raise SenclipError(f"prompt file {pfile.source}: class {cls!r} is given twice "
                               f"(as {key!r} and by its other name)")
        out[cls] = replace(entry, key=cls, name=names.get(cls, key))
    return replace(pfile, classes=out)
