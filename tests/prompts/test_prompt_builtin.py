"""The built-in prompt files: coverage of each dataset's classes, styles, sizes."""

from __future__ import annotations

import pytest

from senclip.data.sen4map_labels import LABEL_SETS, label_classes
from senclip.prompts import STYLES, available_prompt_sets, class_info, load_prompts
from senclip.prompts.loading import builtin_prompt_file

EUROSAT = [
    "AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial", "Pasture", "PermanentCrop",
    "Residential", "River", "SeaLake",
]
BIGEARTHNET = [
    "Urban fabric", "Industrial or commercial units", "Arable land", "Permanent crops", "Pastures",
    "Complex cultivation patterns",
    "Land principally occupied by agriculture, with significant areas of natural vegetation",
    "Agro-forestry areas", "Broad-leaved forest", "Coniferous forest", "Mixed forest",
    "Natural grassland and sparsely vegetated areas", "Moors, heathland and sclerophyllous vegetation",
    "Transitional woodland, shrub", "Beaches, dunes, sands", "Inland wetlands", "Coastal wetlands",
    "Inland waters", "Marine waters",
]
LUCAS = {
    "A": "Artificial land", "B": "Cropland", "C": "Woodland", "D": "Shrubland", "E": "Grassland",
    "F": "Bare land and lichens/moss", "G": "Water areas", "H": "Wetlands",
}
LULC = [  # eo-learn LULC, the labels of the time-series dataset
    "cultivated land", "forest", "grassland", "shrubland", "water", "wetlands", "tundra", "artificial surface",
    "bareland", "snow and ice",
]
SEN4MAP = [  # Sen4Map label sets lc1 (8), lu1 (16), crop (40), eunis (44), bioregion (12), one file; their
    # strings are checked against the reference's in tests/data/test_sen4map_points.py
    c for labels in LABEL_SETS for c in label_classes(labels)
]
DATASETS = {
    "eurosat": EUROSAT, "eurosat-ms": EUROSAT, "bigearthnet": BIGEARTHNET, "lucas": list(LUCAS.values()),
    "timeseries": LULC, "sen4map": SEN4MAP,
}


@pytest.mark.parametrize("dataset", sorted(DATASETS))
def test_builtin_file_has_exactly_the_dataset_classes(dataset):
    assert list(builtin_prompt_file(dataset).classes) == DATASETS[dataset]


@pytest.mark.parametrize("spec", [*STYLES, "all"])
@pytest.mark.parametrize("dataset", sorted(DATASETS))
def test_every_style_loads_for_every_dataset(dataset, spec):
    classes = DATASETS[dataset]
    prompts = load_prompts(spec, classes, dataset)
    assert list(prompts) == classes
    for cls, ps in prompts.items():
        assert len(ps) >= 5, (cls, spec)
        assert len(set(ps)) == len(ps)
        assert all(isinstance(p, str) and p.strip() and "{}" not in p for p in ps)
    if spec == "all":
        parts = [load_prompts(s, classes, dataset) for s in STYLES]
        for cls in classes:
            assert prompts[cls] == [p for part in parts for p in part[cls]]


@pytest.mark.parametrize("dataset", ["eurosat", "bigearthnet", "lucas"])
def test_styles_are_distinct_and_specific(dataset):
    """Aerial and ground prompts differ; within a style no prompt is shared by two classes."""
    classes = DATASETS[dataset]
    by_style = {s: load_prompts(s, classes, dataset) for s in STYLES}
    for cls in classes:
        assert not set(by_style["aerial"][cls]) & set(by_style["ground"][cls])
        assert any(builtin_prompt_file(dataset).classes[cls].name in p for p in by_style["generic"][cls])
    for style in ("aerial", "ground"):
        seen: dict[str, str] = {}
        for cls, ps in by_style[style].items():
            for p in ps:
                assert seen.setdefault(p, cls) == cls, f"{p!r} used for {seen[p]!r} and {cls!r}"
    assert all(p.startswith("a photo") for ps in by_style["ground"].values() for p in ps)


def test_prompts_fit_the_clip_context():
    import open_clip

    tokenizer = open_clip.get_tokenizer("senclip-tiny-vit")
    for dataset in ("eurosat", "bigearthnet", "lucas", "timeseries"):
        for spec_prompts in load_prompts("all", DATASETS[dataset], dataset).values():
            for p in spec_prompts:
                assert len(tokenizer.encode(p)) + 2 <= 77, p


def test_available_prompt_sets_lists_every_builtin():
    sets = available_prompt_sets()
    assert set(sets) == set(DATASETS)
    assert all(styles == list(STYLES) for styles in sets.values())


def test_eurosat_ms_uses_the_eurosat_prompts():
    assert load_prompts("all", EUROSAT, "eurosat-ms") == load_prompts("all", EUROSAT, "eurosat")
    assert load_prompts("ground", EUROSAT, "EuroSAT") == load_prompts("ground", EUROSAT, "eurosat")


def test_lucas_records_letter_codes():
    info = class_info("lucas")
    assert {v["code"]: k for k, v in info.items()} == LUCAS


def test_builtin_follows_the_requested_class_order_and_subset():
    classes = ["SeaLake", "Forest"]
    prompts = load_prompts("aerial", classes, "eurosat")
    assert list(prompts) == classes
    assert prompts["Forest"] == load_prompts("aerial", EUROSAT, "eurosat")["Forest"]
