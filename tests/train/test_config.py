"""Training config: YAML, typed overrides, CLI flags, shipped configs, user errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from senclip.cli import main
from senclip.errors import SenclipError
from senclip.train.config import load_config, option_fields

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_yaml_and_overrides_are_typed(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("optim:\n  lr: 1e-4\nloss:\n  queue_size: 64\nmodel:\n  bands: B02,B03\n")
    cfg = load_config(path, ["optim.lr=3e-5", "data.augment=yes", "model.pretrained=null",
                             "eval.retrieval_ks=[1, 3]"])
    assert cfg.optim.lr == pytest.approx(3e-5) and isinstance(cfg.optim.lr, float)
    assert cfg.loss.queue_size == 64 and cfg.data.augment is True and cfg.model.pretrained is None
    assert cfg.model.bands == ["B02", "B03"] and cfg.eval.retrieval_ks == [1, 3]


@pytest.mark.parametrize(("override", "message"), [
    ("optim.lrr=1", "unknown option 'optim.lrr'"),
    ("loss.name=triplet", "not one of infonce, cosine"),
    ("loss.queue_size=many", "cannot read 'many' as int"),
    ("optim.lr", "must look like section.field=value"),
])
def test_bad_overrides_are_one_line_errors(override, message):
    with pytest.raises(SenclipError, match=message):
        load_config(None, [override])


def test_bad_files(tmp_path):
    with pytest.raises(SenclipError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim: [1, 2\n")
    with pytest.raises(SenclipError, match="not valid YAML"):
        load_config(bad)
    bad.write_text("optimizer:\n  lr: 1\n")
    with pytest.raises(SenclipError, match="unknown section 'optimizer'"):
        load_config(bad)


@pytest.mark.parametrize("name", ["quickstart-tiny.yaml", "senclip-vitb32.yaml", "senclip-rn50.yaml"])
def test_shipped_configs_load(name):
    cfg = load_config(CONFIGS / name)
    assert cfg.model.head is True
    if name != "quickstart-tiny.yaml":  # senclip's recommended settings
        assert cfg.optim.lr == pytest.approx(5e-6) and cfg.data.batch_size == 32


def test_cli_dotted_flags_and_set(capsys):
    assert main(["train", "--config", str(CONFIGS / "quickstart-tiny.yaml"), "--print-config",
                 "--set", "optim.lr=1e-4", "--loss.queue_size", "128", "--trainer.devices", "2"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["optim"]["lr"] == pytest.approx(1e-4)
    assert cfg["loss"]["queue_size"] == 128 and cfg["trainer"]["devices"] == "2"


def test_every_option_has_a_flag_and_help(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    for key, f in option_fields():
        assert f"--{key}" in text and f.metadata["help"]


def test_cli_errors_exit_2(tmp_path, capsys):
    assert main(["train", "--set", "optim.nope=1"]) == 2
    assert "unknown option" in capsys.readouterr().err
    assert main(["train", "--trainer.out", str(tmp_path / "run")]) == 2
    assert "training needs data.manifest and data.cache" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path / "x.ckpt"), "--data.manifest", "m.csv",
                 "--data.cache", "c"]) == 2
    assert "resume checkpoint not found" in capsys.readouterr().err
