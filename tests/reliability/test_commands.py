"""No data lost, for every command that writes: the refusals of senclip.outputs.

Each command is described once (its arguments with an output path, and one input file it reads);
every case runs on every command. The refusals happen before any work, so these cases are cheap;
tests/reliability/test_runs.py covers what needs a real run (overwrite, disk full, SIGINT, kill -9,
two processes at once).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from reliability_helpers import Inputs, md5, read_only_run, sen2lucas, sen2lucas_args

from senclip.cli import build_parser, main

MODEL = ("--model", "senclip-tiny-vit")


@dataclass
class Command:
    argv: Callable[[Inputs, Path], list[str]]   # arguments writing to the given output path
    input: Callable[[Inputs], Path]               # an input the output could be confused with
    folder: bool = False                          # the output is a folder
    exists_refused: bool = True                   # an unrelated existing output is refused


COMMANDS = {
    "map": Command(lambda i, o: ["map", i.scene, o, *MODEL, "--pretrained", i.model, "--no-quicklook"],
                   lambda i: i.scene),
    "embed": Command(lambda i, o: ["embed", i.scene, "--out", o, *MODEL, "--pretrained", i.model],
                     lambda i: i.scene),
    "search": Command(lambda i, o: ["search", i.tiles, "a river", "--out", o, "--no-png"], lambda i: i.tiles),
    "map-pixels": Command(lambda i, o: ["map-pixels", i.stack, o, *MODEL, "--pretrained", i.model,
                                        "--checkpoint", i.timesen],
                          lambda i: i.stack),
    "zeroshot": Command(lambda i, o: ["zeroshot", *MODEL, "--pretrained", i.model, "--dataset", "eurosat",
                                      "--data", i.eurosat, "--no-cache", "--out", o], lambda i: i.model),
    "fewshot": Command(lambda i, o: ["fewshot", *MODEL, "--pretrained", i.model, "--data", i.eurosat,
                                     "--eval-data", i.eurosat, "--shots", "1", "--seeds", "1", "--no-cache",
                                     "--out", o], lambda i: i.model),
    "retrieval": Command(lambda i, o: ["retrieval", *MODEL, "--pretrained", i.model, "--manifest", i.manifest,
                                       "--cache", i.cache, "--out", o], lambda i: i.manifest),
    "export": Command(lambda i, o: ["export", "--base", "senclip-tiny-vit", "--pretrained", i.model,
                                    "--out", o], lambda i: i.model),
    "convert": Command(lambda i, o: ["convert", i.model, "--out", o], lambda i: i.model),
    "harmonise": Command(lambda i, o: ["harmonise", i.scene, o], lambda i: i.scene),
    "composite": Command(lambda i, o: ["composite", "--area", i.area, "--time", "2022-06-01/2022-06-30",
                                       "--stac-url", "http://127.0.0.1:9/stac", "--out", o],
                         lambda i: i.area),
    "embed-ground": Command(lambda i, o: ["embed-ground", "--manifest", i.manifest, "--out", o, *MODEL,
                                          "--pretrained", i.model], lambda i: i.manifest, folder=True,
                         exists_refused=False),  # the cache refuses another model's cache itself
    "proxy-pairs": Command(lambda i, o: ["proxy-pairs", "--eurosat", i.eurosat, *MODEL, "--pretrained",
                                         i.model, "--out", o], lambda i: i.eurosat, folder=True),
    "train": Command(lambda i, o: ["train", "--config", i.config, "--set", f"trainer.out={o}"],
                     lambda i: i.config, folder=True),
    "import-sen2lucas": Command(lambda i, o: ["import-sen2lucas", *sen2lucas_args(i), "--out", o],
                                lambda i: sen2lucas(i).chips, folder=True),
    # shared folders (acquisition folders filled by chips/series/photos point by point, ground caches
    # that check which model built them): an existing one is never refused by senclip.outputs, but
    # it is checked against the inputs and locked like the others
    "acquire": Command(lambda i, o: ["acquire", "chips", "--points", i.points, "--out", o, "--stac-url",
                                     "http://127.0.0.1:9/stac"], lambda i: i.points, folder=True,
                       exists_refused=False),
}
NAMES = list(COMMANDS)


def run(argv, capsys) -> tuple[int, list[str]]:
    quiet = argv[0] not in ("export", "acquire", "convert", "harmonise")  # those have no --no-progress
    status = main([str(a) for a in argv] + ["--no-progress"] * quiet)
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    return status, err


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.is_symlink(), p.stat().st_size if p.is_file() else None)
            for p in sorted(folder.rglob("*"))}


def refused(status: int, err: list[str], text: str) -> None:
    assert status == 2, err
    assert len(err) == 1 and err[0].startswith("error: ") and text in err[0], err


@pytest.mark.parametrize("name", NAMES)
def test_output_is_an_input(name, inputs, tmp_path, capsys):
    cmd = COMMANDS[name]
    target = cmd.input(inputs)
    before = md5(target) if target.is_file() else snapshot(target)
    refused(*run(cmd.argv(inputs, target), capsys), "is the input")
    assert (md5(target) if target.is_file() else snapshot(target)) == before


@pytest.mark.parametrize("link", ["symlink", "hardlink"])
@pytest.mark.parametrize("name", NAMES)
def test_output_links_to_an_input(name, link, inputs, tmp_path, capsys):
    cmd = COMMANDS[name]
    target = cmd.input(inputs)
    if link == "hardlink" and target.is_dir():
        pytest.skip("folders have no hard links")
    alias = tmp_path / ("alias" + target.suffix)
    (alias.symlink_to if link == "symlink" else alias.hardlink_to)(target)
    before = md5(target) if target.is_file() else snapshot(target)
    refused(*run(cmd.argv(inputs, alias), capsys), "is the input")
    assert (md5(target) if target.is_file() else snapshot(target)) == before


@pytest.mark.parametrize("name", [n for n in NAMES if COMMANDS[n].exists_refused])
def test_existing_output_needs_overwrite(name, inputs, tmp_path, capsys):
    cmd = COMMANDS[name]
    out = tmp_path / ("out" if cmd.folder else "out" + (".safetensors" if name in ("export", "convert") else ".tif"))
    if cmd.folder:
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    else:
        out.write_text("an unrelated file")
    before = snapshot(tmp_path)
    refused(*run(cmd.argv(inputs, out), capsys), "pass --overwrite")
    assert snapshot(tmp_path) == before
    assert (out / "notes.txt" if cmd.folder else out).read_text() in ("mine", "an unrelated file")


@pytest.mark.parametrize("name", NAMES)
def test_second_writer_is_refused(name, inputs, tmp_path, capsys):
    """While another process holds an output (simulated by holding its claim here), a run stops."""
    from senclip.outputs import claim

    cmd = COMMANDS[name]
    out = tmp_path / ("out" if cmd.folder else "out" + (".safetensors" if name in ("export", "convert") else ".tif"))
    argv = [str(a) for a in cmd.argv(inputs, out)]
    args = build_parser().parse_args(argv)
    with claim(args.plan(args)):
        status, err = run(argv, capsys)
    refused(status, err, f"being written by another senclip process (pid {os.getpid()})")
    assert not out.exists() or (cmd.folder and not any(out.iterdir()))


@pytest.mark.parametrize("name", ["map", "train", "acquire"])  # a file, a folder and a shared folder
def test_read_only_output_folder(name, inputs, tmp_path):
    cmd = COMMANDS[name]
    folder = tmp_path / "ro"
    folder.mkdir()
    out = folder / ("out" if cmd.folder else "out" + (".safetensors" if name in ("export", "convert") else ".tif"))
    argv = [str(a) for a in cmd.argv(inputs, out)]
    if name not in ("export", "acquire"):
        argv.append("--no-progress")
    done = read_only_run(folder, argv)
    err = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert done.returncode == 2, done.stderr
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert "not writable" in err[0] or "Read-only file system" in err[0], err
    assert list(folder.iterdir()) == []


def test_side_files_never_overwrite_inputs(inputs, tmp_path, capsys):
    """Probabilities, legend and classifier paths are outputs too: each is checked against the inputs."""
    scene_md5 = md5(inputs.scene)
    base = ["map", inputs.scene, tmp_path / "m.tif", *MODEL, "--pretrained", inputs.model]
    refused(*run([*base, "--probabilities", inputs.scene], capsys), "is the input")
    prompts = tmp_path / "m.legend.json"  # a prompt file named like the map's legend
    prompts.write_text('{"water": {"generic": ["water"]}, "forest": {"generic": ["forest"]}}')
    prompts_md5 = md5(prompts)
    refused(*run([*base, "--classes", prompts], capsys), "is the input")
    refused(*run([*base, "--probabilities", tmp_path / "m.tif"], capsys), "two outputs are the same file")
    assert md5(inputs.scene) == scene_md5 and md5(prompts) == prompts_md5
    model_md5 = md5(inputs.model)
    refused(*run([*COMMANDS["fewshot"].argv(inputs, tmp_path / "f.json"), "--save-classifier", inputs.model],
                 capsys), "is the input")
    assert md5(inputs.model) == model_md5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.legend.json"]


READ_ONLY = {"models", "explore"}  # they write no file (explore serves its answers over HTTP only;
# tests/explore/test_command.py checks that its folder is left as it was)


def test_every_writing_command_declares_its_outputs():
    """A new command that writes must join this battery: each registered command has a plan or none,
    and one without a plan is named as read-only here."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    writers = set()
    for name, p in sub.choices.items():
        nested = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
        parsers = nested[0].choices.values() if nested else [p]
        if any(q.get_default("plan") is not None for q in parsers):
            writers.add(name)
    assert writers == set(COMMANDS) | {"download"}, writers
    assert set(sub.choices) - writers == READ_ONLY


def _out(name: str, folder: Path) -> Path:
    cmd = COMMANDS[name]
    return folder / ("out" if cmd.folder else "out" + (".safetensors" if name == "export" else ".tif"))


@pytest.mark.parametrize("name", ["zeroshot", "fewshot", "retrieval", "export", "search", "proxy-pairs"])
def test_overwrite_done_and_disk_full(name, inputs, tmp_path, capsys):
    """The short commands end to end: --overwrite replaces, a rerun is done, a full disk keeps the file."""
    import subprocess

    from reliability_helpers import senclip_cmd, subprocess_env

    cmd = COMMANDS[name]
    out = _out(name, tmp_path / "new")  # the output folder is missing: it is made
    argv = [str(a) for a in cmd.argv(inputs, out)] + ["--no-progress"] * (name != "export")
    if cmd.folder:
        out.mkdir(parents=True)
        (out / "notes.txt").write_text("mine")
    else:
        out.parent.mkdir()
        out.write_text("an unrelated file")
    assert main([*argv, "--overwrite"]) == 0, capsys.readouterr().err
    written = sorted(p.name for p in out.iterdir()) if cmd.folder else [md5(out)]
    assert written != ["notes.txt"] and written != [md5_text("an unrelated file")]
    assert main(argv) == 0 and "done already" in capsys.readouterr().err
    before = snapshot(out.parent)
    # RLIMIT_FSIZE also caps the shared-memory files DataLoader workers pass batches through, which
    # no full disk does: the run under the limit loads in-process
    workers = ["--workers", "0"] if name in ("zeroshot", "fewshot", "retrieval", "search") else []
    full = subprocess.run(senclip_cmd(*argv, *workers, "--overwrite"), capture_output=True, text=True,
                          env=subprocess_env(), timeout=300, preexec_fn=_limit_file_size(512))
    # one error line; GDAL's libtiff may print its own diagnostics ("_tiffSeekProc: …") before it
    err = [ln for ln in full.stderr.splitlines() if ln.strip() and not ln.startswith("_tiff")]
    assert full.returncode not in (0, 130) and len(err) == 1 and err[0].startswith("error: "), full.stderr
    after = snapshot(out.parent)
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    assert changed <= {f".{out.name}.senclip.json", f"{out.name}/.senclip.json"}, changed  # its job record


def md5_text(text: str) -> str:
    import hashlib

    return hashlib.md5(text.encode()).hexdigest()


def _limit_file_size(limit: int):
    import resource

    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
