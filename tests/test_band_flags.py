"""Band flags say what they mean; the old ``--bands`` spelling still works for one release."""

from __future__ import annotations

import pytest

from senclip.bands import RGB_BANDS, S2_L2A_BANDS, needs_inflation, parse_bands
from senclip.cli import build_parser
from senclip.errors import SenclipError

CASES = [  # command line without the band flag, new flag, namespace attribute
    (["zeroshot", "--model", "m", "--dataset", "eurosat", "--data", "d", "--out", "o.json"],
     "--model-bands", "model_bands"),
    (["fewshot", "--model", "m", "--data", "d", "--eval-data", "e", "--out", "o.json"],
     "--model-bands", "model_bands"),
    (["map", "in.tif", "out.tif", "--model", "m"], "--input-bands", "bands"),
    (["embed", "in.tif", "--out", "o.parquet", "--model", "m"], "--input-bands", "bands"),
    (["map-pixels", "stack.tif", "out.tif", "--model", "m"], "--input-bands", "bands"),
    (["acquire", "chips", "--points", "p.csv", "--out", "o", "--stac-url", "http://x"],
     "--download-bands", "bands"),
]


@pytest.mark.parametrize("argv,new,dest", CASES, ids=[c[0][0] for c in CASES])
def test_old_spelling_is_an_alias_with_a_one_line_note(argv, new, dest, capsys):
    parser = build_parser()
    args_new = parser.parse_args([*argv, new, "B04,B03,B02"])
    assert capsys.readouterr().err == ""
    args_old = parser.parse_args([*argv, "--bands", "B04,B03,B02"])
    err = capsys.readouterr().err
    assert err == f"note: --bands is deprecated and goes away in the next release; use {new}\n"
    assert getattr(args_old, dest) == getattr(args_new, dest)
    assert vars(args_old) == vars(args_new)
    with pytest.raises(SystemExit):
        parser.parse_args([*argv[:2 if argv[0] == "acquire" else 1], "--help"])
    shown = capsys.readouterr().out
    assert new in shown and "--bands" not in shown  # help shows the new spelling only


def test_band_lists_and_the_one_inflation_rule():
    assert parse_bands("l2a") == S2_L2A_BANDS and parse_bands(["b04", "B03", "b02"]) == RGB_BANDS
    assert parse_bands("4,3,2", indexes=True) == (4, 3, 2)
    assert parse_bands("RGB", indexes=True) == RGB_BANDS
    with pytest.raises(SenclipError, match="mixes names and indexes"):
        parse_bands("B04,3", indexes=True)
    with pytest.raises(SenclipError, match="--input-bands is empty"):
        parse_bands(" , ", indexes=True)
    assert not needs_inflation(RGB_BANDS, None)
    assert not needs_inflation(RGB_BANDS, ("B02", "B03", "B04"))  # same set: matched by name
    assert needs_inflation(RGB_BANDS, S2_L2A_BANDS)
