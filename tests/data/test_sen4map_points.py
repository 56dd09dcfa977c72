"""Sen4Map as the TimeSenCLIP reference evaluates it: its class texts (listed here from the reference),
the eunis and bioregion label sets, the published test list (CSV, swapped coordinate columns and all)
and the reference's metrics under --protocol timesenclip."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

h5py = pytest.importorskip("h5py")

from senclip.cli import main  # noqa: E402
from senclip.data.sen4map import Sen4Map  # noqa: E402
from senclip.data.sen4map_labels import label_classes  # noqa: E402
from senclip.data.sen4map_points import coordinate_order, read_points  # noqa: E402
from senclip.errors import SenclipError  # noqa: E402

# The reference's strings (pallavijain-pj/TimeSenCLIP): class_list_lc / class_list_lu of
# src/Data/lucas_label_mapping.py (8dfc8e6); crop_labels, bioregion_mapping, eunis_mapping of
# src/Data/lucas_class_mapping.py (a48994f); the test CSV's columns hold these strings.
REFERENCE = {
    "lc1": ["Artificial Land", "Cropland", "Woodland", "Shrubland", "Grassland", "Bare Land", "Water",
            "Wetlands"],
    "lu1": ["Agriculture", "Forestry", "Aquaculture and Fishing", "Mining and Quarrying",
            "Other primary production", "Energy production", "Industry and Manufacturing",
            "Transport, Communication Networks, Storage, Protection Works", "Water and Waste Treatment",
            "Construction", "Commerce, Financial, Professional and Information Services",
            "Community services", "Recreation, Leisure, Sport", "Residential", "Abandoned areas",
            "Semi-natural and natural areas not in use"],
    "crop": ["Common wheat", "Durum wheat", "Barley", "Rye", "Oats", "Maize", "Rice", "Triticale",
             "Other cereals", "Potatoes", "Sugar beet", "Other root crops", "Sunflower",
             "Rape and turnip rape", "Soya", "Cotton", "Other fibre and oleaginous crops", "Tobacco",
             "Other non-permanent industrial crops", "Dry pulses", "Tomatoes", "Other fresh vegetables",
             "Floriculture and ornamental plants", "Strawberries", "Clovers", "Lucerne",
             "Other leguminous and mixtures for fodder", "Mix of cereals", "Temporary grassland",
             "Apple fruit", "Pear fruit", "Cherry fruit", "Nuts trees", "Other fruit trees and berries",
             "Oranges", "Other citrus fruit", "Olive groves", "Vineyards", "Nurseries",
             "Permanent industrial crops"],
    "bioregion": ["Alpine", "Anatolian", "Arctic", "Atlantic", "BlackSea", "Boreal", "Continental",
                  "Macaronesia", "Mediterranean", "Outside", "Pannonian", "Steppic"],
    "eunis": ["Arable land and market gardens", "Low density buildings", "Mesic grasslands",
              "Broadleaved deciduous woodland", "Coniferous woodland",
              "Temperate and mediterranean-montane scrub", "Seasonally wet and wet grasslands",
              "Surface running waters", "Buildings of cities, towns and villages",
              "Mixed deciduous and coniferous woodland", "Dry grasslands",
              "Arctic, alpine and subalpine scrub", "Alpine and subalpine grasslands",
              "Broadleaved evergreen woodland",
              "Lines of trees, small anthropogenic woodlands, recently felled woodland, early-stage "
              "woodland and coppice",
              "Shrub plantations", "Maquis, arborescent matorral and thermo-Mediterranean brushes",
              "Temperate shrub heathland", "Raised and blanket bogs",
              "Transport networks and other constructed hard-surfaced areas",
              "Extractive industrial sites",
              "Spiny Mediterranean heaths (phrygana, hedgehog-heaths and related coastal cliff vegetation)",
              "Surface standing waters", "Tundra", "Inland cliffs, rock pavements and outcrops",
              "Garrigue", "Aapa, palsa and polygon mires", "Cultivated areas of gardens and parks",
              "Waste deposits", "Miscellaneous inland habitats with very sparse or no vegetation",
              "Inland salt steppes", "Sparsely wooded grasslands",
              "Sedge and reedbeds, normally without free-standing water",
              "Valley mires, poor fens and transition mires", "Riverine and fen scrubs", "Screes",
              "Inland saline and brackish marshes and reedbeds", "Coastal dunes and sandy shores",
              "Littoral zone of inland surface waterbodies",
              "Highly artificial man-made waters and associated structures",
              "Base-rich fens and calcareous spring mires", "Snow or ice-dominated habitats",
              "Rock cliffs, ledges and shores, including the supralittoral", "Coastal shingle"],
}
HEADER = ["im_id", "lat", "lon", "lc_label", "lu_label", "crop_label", "nuts_label", "bioregion_class",
          "eunis_class"]
# (LUCAS POINT_ID, lc, lu, crop, bioregion, eunis); in the HDF5 or not
LISTED = [
    (40683280, "Grassland", "Agriculture", "NA", "Atlantic", "Mesic grasslands", True),
    (55082360, "Cropland", "Agriculture", "Sunflower", "Continental", "Arable land and market gardens", True),
    (49542520, "Woodland", "Forestry", "NA", "Continental", "Broadleaved deciduous woodland", True),
    (30041976, "Shrubland", "Semi-natural and natural areas not in use", "NA", "Mediterranean",
     "Broadleaved deciduous woodland", True),
    (56542192, "Artificial Land", "Residential", "NA", "Continental",
     "Buildings of cities, towns and villages", True),
    (57641486, "Shrubland", "Semi-natural and natural areas not in use", "NA", "Mediterranean",
     "Spiny Mediterranean heaths (phrygana, hedgehog-heaths and related coastal cliff vegetation)", True),
    (30961986, "Artificial Land", "Transport, Communication Networks, Storage, Protection Works", "NA",
     "Mediterranean", "Buildings of cities, towns and villages", True),
    (50964938, "Artificial Land", "Residential", "NA", "Boreal", "Low density buildings", False),
    (49845074, "Wetlands", "Semi-natural and natural areas not in use", "NA", "Boreal",
     "Aapa, palsa and polygon mires", False),
]


def test_class_texts_are_the_references():
    for labels, classes in REFERENCE.items():
        assert label_classes(labels) == classes, labels


def _lon_lat(point_id: int) -> tuple[float, float]:
    """The geographic position of a LUCAS grid point (POINT_ID = ETRS89-LAEA easting, northing in km)."""
    from rasterio.warp import transform

    e, n = point_id // 10_000 * 1000.0, point_id % 10_000 * 1000.0
    lon, lat = transform("EPSG:3035", "EPSG:4326", [e], [n])
    return lon[0], lat[0]


def _write_csv(path, swapped=True):
    """The list in the published format, its first point listed twice (evaluated twice, as the
    reference's isin() filter keeps both rows)."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        for pid, lc, lu, crop, bio, eunis, _ in [*LISTED, LISTED[0]]:
            lon, lat = _lon_lat(pid)
            first, second = (lon, lat) if swapped else (lat, lon)  # the published file: lat holds longitudes
            w.writerow([f"Lucas_Point_{pid}", first, second, lc, lu, crop, "Spain", bio, eunis])


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """An HDF5 file of the 1x1 layout (7 of the 9 listed points, plus 2 unlisted ones, one broken) whose
    EUNIS attributes disagree with the list, and the list in the published format."""
    root = tmp_path_factory.mktemp("published")
    rng = np.random.default_rng(0)
    h5 = root / "test.h5"
    with h5py.File(h5, "w") as f:
        for pid, *_rest, present in LISTED:
            if present:
                g = f.create_group(f"Lucas_Point_{pid}")
                g.create_dataset("image", data=rng.uniform(100, 4000, (12, 10, 1, 1)).astype(np.float32))
                g.attrs.update({"lc1": "A11", "lu1": "U370", "nuts0": "ES", "bioregion_class_code": 0,
                                "EUNIS_L2": 23})
        f.create_group("Lucas_Point_11112222").create_dataset("image", data=np.zeros((12, 3, 1, 1)))
        g = f.create_group("Lucas_Point_33334444")
        g.create_dataset("image", data=rng.uniform(100, 4000, (12, 10, 1, 1)).astype(np.float32))
    points = root / "Sen4Map_Test_all_labels.csv"
    _write_csv(points)
    return h5, points


def test_published_list_is_read_as_it_is(published, tmp_path):
    h5, points = published
    plist = read_points(points)
    assert plist.ids[0] == plist.ids[-1] == "Lucas_Point_40683280" and len(plist.ids) == len(LISTED) + 1
    assert plist.duplicates == 1
    assert plist.labels["crop"][:2] == [None, "Sunflower"]  # NA: not a crop point
    assert plist.labels["eunis"][5].startswith("Spiny Mediterranean heaths (phrygana,")  # quoted commas kept
    assert plist.coordinates["order"] == "swapped" and plist.coordinates["method"] == "lucas-grid"
    assert plist.coordinates["evidence"].startswith(f"{len(LISTED) + 1} of {len(LISTED) + 1} points")
    straight = tmp_path / "straight.csv"
    _write_csv(straight, swapped=False)
    assert read_points(straight).coordinates["order"] == "as labelled"
    # ids that are not LUCAS ids: European coordinate ranges decide
    ranges = coordinate_order(["a", "b"], np.array([8.0, -3.0]), np.array([52.0, 40.0]))
    assert ranges["order"] == "swapped" and ranges["method"] == "europe-range"

    ds = Sen4Map(h5, labels="eunis", points=points)
    assert len(ds) == 8 and ds.paths[0] == ds.paths[-1] == "Lucas_Point_40683280"
    listed = [row[5] for row in LISTED if row[6]] + [LISTED[0][5]]
    assert [ds.classes[i] for i in ds.labels] == listed  # the list's labels, every row
    info = ds.points_info
    assert (info["listed"], info["present"], info["missing_from_h5"], info["duplicate_rows"]) == (10, 8, 2, 1)
    assert info["missing_examples"] == ["Lucas_Point_50964938", "Lucas_Point_49845074"]
    crop = Sen4Map(h5, labels="crop", points=points)
    assert [crop.classes[i] for i in crop.labels] == ["Sunflower"] and crop.points_info["without_label"] == 7
    # the HDF5 attributes alone: EUNIS_L2 23 is the 24th class (Tundra), bioregion 0 Alpine
    attrs = Sen4Map(f"{h5}:eunis:skip-bad")
    assert {attrs.classes[i] for i in attrs.labels} == {"Tundra"} and len(attrs) == 7
    assert {c for c in (Sen4Map(h5, labels="bioregion", skip_bad=True).classes[i] for i in
                        Sen4Map(h5, labels="bioregion", skip_bad=True).labels)} == {"Alpine"}


def test_bad_lists_and_values_are_refused_in_one_line(published, tmp_path):
    h5, _ = published
    bad = tmp_path / "bad.csv"
    rows = [HEADER, ["Lucas_Point_40683280", "1", "50", "Grassland", "Agriculture", "NA", "Spain", "Atlantic",
                     "Mesic grassland"]]
    with open(bad, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    with pytest.raises(SenclipError, match=r"bad\.csv: point Lucas_Point_40683280, column eunis_class: "
                                           r"'Mesic grassland' is not a eunis class"):
        Sen4Map(h5, labels="eunis", points=bad)
    assert len(Sen4Map(h5, labels="lc1", points=bad)) == 1
    other = tmp_path / "other_split.csv"  # a list of another split: none of its points is in the file
    with open(other, "w", newline="") as f:
        csv.writer(f).writerows([HEADER, ["Lucas_Point_1", "1", "50", "Grassland", *["NA"] * 5],
                                 ["Lucas_Point_2", "1", "50", "Grassland", *["NA"] * 5]])
    with pytest.raises(SenclipError, match=rf"^0 of 2 points listed in {other} are in {h5}$"):
        Sen4Map(h5, labels="lc1", points=other)
    (tmp_path / "noid.csv").write_text("id,lat\n1,2\n")
    with pytest.raises(SenclipError, match="no 'im_id' column"):
        Sen4Map(h5, points=tmp_path / "noid.csv")
    for value, message in [
        ("Z9", r"EUNIS_L2 'Z9' is not a eunis class \(one of the 44 names, an index 0 \.\.\. 43 or a "
               r"EUNIS level-2 code such as E2\); the reference's labels come from its test list: "
               r"--points TEST\.csv"),
        ("E5", r"EUNIS_L2 'E5' is a EUNIS level-2 habitat without a class among the reference's 44; "
               r".*--points"),
        ("44", r"EUNIS_L2 '44' is not a eunis class")]:
        with h5py.File(tmp_path / "odd.h5", "w") as f:
            g = f.create_group("Lucas_Point_1")
            g.create_dataset("image", data=np.ones((12, 10, 1, 1), dtype=np.float32))
            g.attrs["EUNIS_L2"] = value
        with pytest.raises(SenclipError, match=message) as info:
            Sen4Map(tmp_path / "odd.h5", labels="eunis")
        assert "\n" not in str(info.value)


# EUNIS habitat classification (EEA, 2012), level 2: the code of each name in the reference's list, as
# the EEA's level-2 code list gives them (read here from the classification, not from senclip)
EUNIS_L2 = {
    "Arable land and market gardens": "I1", "Low density buildings": "J2", "Mesic grasslands": "E2",
    "Broadleaved deciduous woodland": "G1", "Coniferous woodland": "G3",
    "Temperate and mediterranean-montane scrub": "F3", "Seasonally wet and wet grasslands": "E3",
    "Surface running waters": "C2", "Buildings of cities, towns and villages": "J1",
    "Mixed deciduous and coniferous woodland": "G4", "Dry grasslands": "E1",
    "Arctic, alpine and subalpine scrub": "F2", "Alpine and subalpine grasslands": "E4",
    "Broadleaved evergreen woodland": "G2",
    "Lines of trees, small anthropogenic woodlands, recently felled woodland, early-stage woodland and "
    "coppice": "G5",
    "Shrub plantations": "FB", "Maquis, arborescent matorral and thermo-Mediterranean brushes": "F5",
    "Temperate shrub heathland": "F4", "Raised and blanket bogs": "D1",
    "Transport networks and other constructed hard-surfaced areas": "J4", "Extractive industrial sites": "J3",
    "Spiny Mediterranean heaths (phrygana, hedgehog-heaths and related coastal cliff vegetation)": "F7",
    "Surface standing waters": "C1", "Tundra": "F1", "Inland cliffs, rock pavements and outcrops": "H3",
    "Garrigue": "F6", "Aapa, palsa and polygon mires": "D3", "Cultivated areas of gardens and parks": "I2",
    "Waste deposits": "J6", "Miscellaneous inland habitats with very sparse or no vegetation": "H5",
    "Inland salt steppes": "E6", "Sparsely wooded grasslands": "E7",
    "Sedge and reedbeds, normally without free-standing water": "D5",
    "Valley mires, poor fens and transition mires": "D2", "Riverine and fen scrubs": "F9", "Screes": "H2",
    "Inland saline and brackish marshes and reedbeds": "D6", "Coastal dunes and sandy shores": "B1",
    "Littoral zone of inland surface waterbodies": "C3",
    "Highly artificial man-made waters and associated structures": "J5",
    "Base-rich fens and calcareous spring mires": "D4", "Snow or ice-dominated habitats": "H4",
    "Rock cliffs, ledges and shores, including the supralittoral": "B3", "Coastal shingle": "B2",
}


def test_eunis_level2_codes_index_and_names_are_labels(tmp_path):
    """EUNIS_L2 as an index, a name or a EUNIS level-2 code (any case) gives the same class."""
    from senclip.data.sen4map_labels import class_index

    assert sorted(EUNIS_L2) == sorted(REFERENCE["eunis"]) and len(set(EUNIS_L2.values())) == 44
    for i, name in enumerate(REFERENCE["eunis"]):
        code = EUNIS_L2[name]
        assert class_index("eunis", code) == class_index("eunis", code.lower()) == i
        assert class_index("eunis", str(i)) == class_index("eunis", name) == i
        assert class_index("eunis", name.upper()) == i
    with h5py.File(tmp_path / "codes.h5", "w") as f:
        for k, value in enumerate([b"E2", np.array([b"G3"]), 2, "Coniferous woodland"]):
            g = f.create_group(f"Lucas_Point_{k}")
            g.create_dataset("image", data=np.ones((12, 10, 1, 1), dtype=np.float32))
            g.attrs["EUNIS_L2"] = value
    ds = Sen4Map(tmp_path / "codes.h5", labels="eunis")
    assert [ds.classes[i] for i in ds.labels] == ["Mesic grasslands", "Coniferous woodland"] * 2


def test_previous_class_keys_in_user_prompt_files(tmp_path):
    """A user prompt file keyed with senclip's class keys before they became the reference's strings
    (lower case, "nut trees", "recreation, leisure and sport", ...) still loads, with its own texts."""
    import yaml

    from senclip.prompts import load_prompts

    old_lu = ["agriculture", "forestry", "aquaculture and fishing", "mining and quarrying",
              "other primary production", "energy production", "industry and manufacturing",
              "transport, communication networks, storage and protection works", "water and waste treatment",
              "construction", "commerce, financial, professional and information services",
              "community services",
              "recreation, leisure and sport", "residential", "abandoned areas",
              "semi-natural and natural areas not in use"]
    path = tmp_path / "lu.yaml"
    path.write_text(yaml.safe_dump({"generic": ["an aerial photo of {}."],
                                    "classes": {k: {} for k in old_lu}}), encoding="utf-8")
    prompts = load_prompts(str(path), label_classes("lu1"), "sen4map")
    assert list(prompts) == REFERENCE["lu1"]
    assert prompts["Recreation, Leisure, Sport"] == ["an aerial photo of recreation, leisure and sport."]
    crop = {"generic": ["{}"], "classes": {("nut trees" if c == "Nuts trees" else c.upper()): {}
                                           for c in REFERENCE["crop"]}}
    path.write_text(yaml.safe_dump(crop), encoding="utf-8")
    assert load_prompts(str(path), label_classes("crop"), "sen4map")["Nuts trees"] == ["nut trees"]
    # the same class twice, a typo, and another dataset (no previous keys there): refused in one line
    lc = {"generic": ["{}"], "classes": {c: {} for c in REFERENCE["lc1"]} | {"cropland": {}}}
    path.write_text(yaml.safe_dump(lc), encoding="utf-8")
    twice = r"class 'Cropland' is given twice \(as 'Cropland' and 'cropland'\)"
    with pytest.raises(SenclipError, match=twice):
        load_prompts(str(path), label_classes("lc1"), "sen4map")
    lc["classes"] = {c: {} for c in REFERENCE["lc1"][1:]} | {"artificial lands": {}}
    path.write_text(yaml.safe_dump(lc), encoding="utf-8")
    with pytest.raises(SenclipError, match="unknown class 'artificial lands'"):
        load_prompts(str(path), label_classes("lc1"), "sen4map")
    eurosat = {"generic": ["{}"], "classes": {"forest": {}, "River": {}}}
    path.write_text(yaml.safe_dump(eurosat), encoding="utf-8")
    with pytest.raises(SenclipError, match="unknown class 'forest'"):
        load_prompts(str(path), ["Forest", "River"], "eurosat")


def test_reference_average_class_accuracy_counts_absent_classes_as_zero():
    from senclip.evaluate.timesenclip_protocol import average_class_accuracy

    scores = np.array([[3, 1, 0, 0], [0, 2, 1, 0], [0, 3, 1, 0], [1, 0, 0, 2.0]])
    labels = np.array([0, 1, 2, 2])  # class 3 has no point; class 2's two points: 0 right
    assert average_class_accuracy(scores, labels, 4) == pytest.approx((1 + 1 + 0 + 0) / 4)


def test_zeroshot_with_the_published_list_and_the_references_metrics(published, tmp_path, capsys):
    from timesen_published import write_published

    h5, points = published
    ckpt = tmp_path / "TimeSenCLIP_1x1.pt"
    write_published(ckpt, "bare/time_token", {"D": 128, "F": 64, "P": 10, "T": 12, "L": 1, "heads": 8})
    out = tmp_path / "eunis.json"
    assert main(["zeroshot", "--model", "senclip-tiny-vit", "--checkpoint", str(ckpt), "--dataset", "sen4map",
                 "--data", str(h5), "--points", str(points), "--labels", "eunis", "--protocol", "timesenclip",
                 "--out", str(out), "--no-cache", "--no-progress", "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    assert "note: 2 of 10 points listed in" in captured.err
    result = json.loads(out.read_text())
    assert result["n"] == 8 and len(result["classes"]) == 44 and result["points"]["duplicate_rows"] == 1
    assert result["points"]["missing_from_h5"] == 2 and result["points"]["coordinates"]["order"] == "swapped"
    block = result["timesenclip_protocol"]
    assert block["n"] == 8 and block["prompts"]["classes"] == REFERENCE["eunis"]
    for scores in (block, block["raw"]):
        assert 0 <= scores["average_class_accuracy"] <= scores["mean_class_accuracy"] <= 1
        # all 44 classes count in the reference's average, the 5 present in senclip's
        recalls = [v for v in scores["per_class"].values() if v is not None]
        assert len(recalls) == block["classes_present"] == 5
        assert scores["average_class_accuracy"] == pytest.approx(sum(recalls) / 44)
        assert scores["mean_class_accuracy"] == pytest.approx(sum(recalls) / 5)
    md = out.with_suffix(".md").read_text()
    assert "average class acc. (reference: all classes, absent = 0)" in md
    assert "points: 8 of 10 listed" in md and "swapped" in md
    assert "1 rows repeat an earlier point and are evaluated again" in md
    assert "| raw (cos/2+1) |" in md and "| column-mean normalised |" in md
    assert main(["zeroshot", "--model", "senclip-tiny-vit", "--dataset", "eurosat", "--data", str(tmp_path),
                 "--points", str(points), "--out", str(tmp_path / "x.json")]) == 2
    assert "apply to --dataset sen4map" in capsys.readouterr().err


def test_series_normalisation_is_an_option_of_the_commands(published, tmp_path):
    from timesen_published import write_published

    h5, points = published
    ckpt = tmp_path / "TimeSenCLIP_1x1.pt"
    write_published(ckpt, "bare/time_token", {"D": 128, "F": 64, "P": 10, "T": 12, "L": 1, "heads": 8})
    cache = tmp_path / "cache"
    embeddings = {}
    for rule in ("reference-clamped", "reference-eval"):
        out = tmp_path / f"{rule}.json"
        before = set(cache.glob("*.npy"))
        assert main(["zeroshot", "--model", "senclip-tiny-vit", "--checkpoint", str(ckpt), "--dataset",
                     "sen4map", "--data", str(h5), "--points", str(points), "--series-normalisation", rule,
                     "--out", str(out), "--cache-dir", str(cache), "--no-progress",
                     "--device", "cpu"]) == 0
        assert json.loads(out.read_text())["model"]["series_normalisation"] == rule
        (new,) = set(cache.glob("*.npy")) - before  # each rule its own cache entry
        embeddings[rule] = np.load(new)
    # the flag reaches the tower: the same points embed, and so score against any text, differently
    a, b = embeddings["reference-clamped"], embeddings["reference-eval"]
    assert a.shape == b.shape == (8, 128)
    classes = np.random.default_rng(0).normal(size=(44, 128))
    assert np.abs(a @ classes.T - b @ classes.T).max() > 1e-2
    with pytest.raises(SenclipError, match="has no series normalisation rules"):
        from senclip.models.kinds import set_series_normalisation

        set_series_normalisation(torch.nn.Linear(1, 1), "reference-eval")
