"""User prompt files (YAML/JSON), spec parsing and every error case of load_prompts."""

from __future__ import annotations

import json

import pytest
import yaml

from senclip.errors import SenclipError
from senclip.prompts import load_prompts, read_prompt_file
from senclip.prompts.loading import builtin_path

CLASSES = ["Forest", "River"]
USER = {
    "dataset": "eurosat",
    "generic": ["a satellite photo of {}.", "an image of {} from space."],
    "classes": {
        "Forest": {"name": "woodland", "aerial": ["dark green tree crowns.", "a dense canopy."]},
        "River": {"aerial": ["a winding blue line.", "water between banks."]},
    },
}


def _write(tmp_path, data, name="p.yaml"):
    path = tmp_path / name
    if name.endswith(".json"):
        path.write_text(json.dumps(data), encoding="utf-8")
    else:
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _error(spec, classes=CLASSES, dataset="eurosat") -> str:
    with pytest.raises(SenclipError) as info:
        load_prompts(str(spec), classes, dataset)
    msg = str(info.value)
    assert "\n" not in msg and msg
    return msg


@pytest.mark.parametrize("name", ["p.yaml", "p.yml", "p.json"])
def test_user_file_round_trip(tmp_path, name):
    path = _write(tmp_path, USER, name)
    everything = load_prompts(str(path), CLASSES, "eurosat")
    assert everything == {
        "Forest": [
            "a satellite photo of woodland.", "an image of woodland from space.",
            "dark green tree crowns.", "a dense canopy.",
        ],
        "River": [
            "a satellite photo of River.", "an image of River from space.",
            "a winding blue line.", "water between banks.",
        ],
    }
    assert load_prompts(f"{path}:aerial", CLASSES, "eurosat")["River"] == USER["classes"]["River"]["aerial"]
    generic = load_prompts(f"{path}:generic", ["River", "Forest"], "eurosat")
    assert generic["Forest"] == everything["Forest"][:2]
    assert load_prompts(f"{path}:all", CLASSES, "eurosat") == everything


def test_builtin_file_as_json_gives_the_same_prompts(tmp_path):
    raw = yaml.safe_load(builtin_path("lucas").read_text(encoding="utf-8"))
    path = _write(tmp_path, raw, "lucas.json")
    classes = list(raw["classes"])
    assert load_prompts(str(path), classes, "lucas") == load_prompts("all", classes, "lucas")
    assert load_prompts(f"{path}:ground", classes, "lucas") == load_prompts("ground", classes, "lucas")


def test_duplicate_prompts_are_dropped_in_order(tmp_path):
    data = {
        "generic": ["a photo of {}."],
        "classes": {
            "Forest": {"aerial": ["trees.", "a photo of Forest.", "trees."]},
            "River": {"aerial": ["water."]},
        },
    }
    prompts = load_prompts(str(_write(tmp_path, data)), CLASSES, "eurosat")
    assert prompts["Forest"] == ["a photo of Forest.", "trees."]


def test_path_with_colon_and_tilde(tmp_path, monkeypatch):
    path = _write(tmp_path, USER, "odd:name.yaml")
    assert list(load_prompts(str(path), CLASSES, "eurosat")) == CLASSES
    assert load_prompts(f"{path}:aerial", CLASSES, "eurosat")["Forest"][0] == "dark green tree crowns."
    monkeypatch.setenv("HOME", str(tmp_path))
    assert list(load_prompts("~/odd:name.yaml:generic", CLASSES, "eurosat")) == CLASSES


def test_unknown_style():
    assert "unknown prompt style 'sky'" in _error("sky")
    assert "unknown prompt style" in _error("")


def test_unknown_style_after_a_file(tmp_path):
    path = _write(tmp_path, USER)
    assert "unknown prompt style 'sky'" in _error(f"{path}:sky")


def test_no_builtin_for_dataset():
    msg = _error("ground", dataset="so2sat")
    assert "no built-in prompts for dataset 'so2sat'" in msg and "bigearthnet" in msg


def test_file_not_found(tmp_path):
    assert "not found" in _error(tmp_path / "missing.yaml")
    assert "not found" in _error(f"{tmp_path / 'missing.json'}:ground")
    (tmp_path / "dir.yaml").mkdir()
    assert "is a directory" in _error(tmp_path / "dir.yaml")


def test_bad_yaml_and_json(tmp_path):
    (tmp_path / "bad.yaml").write_text("classes: [unclosed\n  - x: {\n", encoding="utf-8")
    assert "could not parse prompt file" in _error(tmp_path / "bad.yaml")
    (tmp_path / "bad.json").write_text('{"classes": {"Forest": ', encoding="utf-8")
    msg = _error(tmp_path / "bad.json")
    assert "could not parse prompt file" in msg and "JSON" in msg
    (tmp_path / "list.yaml").write_text("- a\n- b\n", encoding="utf-8")
    assert "must be a mapping" in _error(tmp_path / "list.yaml")


def test_missing_class(tmp_path):
    data = {"generic": ["a photo of {}."], "classes": {"River": None}}
    path = _write(tmp_path, data)
    assert f"prompt file {path} has no prompts for class 'Forest'" in _error(path)


def test_missing_class_in_builtin_suggests_spelling():
    msg = _error("ground", classes=["Forest", "Sea Lake"])
    assert "has no prompts for class 'Sea Lake'" in msg and "did you mean 'SeaLake'" in msg


def test_unknown_class(tmp_path):
    data = {"generic": ["a photo of {}."], "classes": {"Forest": None, "River": None, "Foo": None}}
    path = _write(tmp_path, data)
    msg = _error(path)
    assert msg.startswith(f"unknown class 'Foo' in prompt file {path}")
    assert "dataset classes are Forest, River" in msg


def test_wrong_case_class_gets_a_hint(tmp_path):
    path = _write(tmp_path, {"generic": ["a photo of {}."], "classes": {"forest": None, "River": None}})
    assert "did you mean 'Forest'" in _error(path)


@pytest.mark.parametrize("where", ["aerial", "generic"])
def test_empty_prompt_list(tmp_path, where):
    data = yaml.safe_load(yaml.safe_dump(USER))
    if where == "generic":
        data["generic"] = []
    else:
        data["classes"]["River"]["aerial"] = []
    assert "empty prompt list" in _error(_write(tmp_path, data))


def test_style_missing_from_file(tmp_path):
    path = _write(tmp_path, USER)
    assert "has no 'ground' prompts" in _error(f"{path}:ground")


def test_style_missing_for_one_class(tmp_path):
    data = yaml.safe_load(yaml.safe_dump(USER))
    data["classes"]["Forest"]["ground"] = ["a photo of trees."]
    path = _write(tmp_path, data)
    assert "no 'ground' prompts for class 'River'" in _error(path)
    aerial = load_prompts(f"{path}:aerial", CLASSES, "eurosat")
    assert aerial["Forest"] == ["dark green tree crowns.", "a dense canopy."]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"classes": {"Forest": {"arial": ["x"]}}}, "unknown key 'arial'"),
        ({"generic": ["a photo of a thing."], "classes": {"Forest": None}}, "no {} placeholder"),
        ({"classes": {"Forest": {"aerial": "one string"}}}, "must be a list of strings"),
        ({"classes": {"Forest": {"aerial": ["ok", 3]}}}, "non-empty strings"),
        ({"classes": {}}, "non-empty 'classes'"),
        ({"classes": {"Forest": None}}, "has no prompts"),
        ({"promts": {}}, "unknown key 'promts'"),
    ],
)
def test_schema_errors(tmp_path, data, expected):
    with pytest.raises(SenclipError, match=expected.replace("{", r"\{").replace("}", r"\}")):
        read_prompt_file(_write(tmp_path, data))


def test_duplicate_or_empty_class_list():
    assert "listed twice" in _error("ground", classes=["Forest", "Forest"])
    assert "no classes" in _error("ground", classes=[])
