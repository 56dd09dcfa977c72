"""The ``senclip`` command: one sub-command per module in :mod:`senclip.commands`.

Each command module exposes ``register(subparsers)``, which adds its parser
and sets ``func``; heavy imports (torch, rasterio, …) happen inside the
command's ``run`` so that ``senclip --help`` stays fast. User errors
(:class:`~senclip.errors.SenclipError`) are printed as one line and exit with
status 2; nothing is written when a command fails. A command that writes
also sets ``plan`` (its inputs and outputs): :mod:`senclip.outputs` checks it
and takes the output's lock before the command runs.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from senclip import __version__
from senclip.errors import SenclipError

COMMANDS = [
    "senclip.commands.zeroshot",
    "senclip.commands.fewshot",
    "senclip.commands.models",
    "senclip.commands.map", "senclip.commands.embed", "senclip.commands.search", "senclip.commands.explore",
    "senclip.commands.acquire", "senclip.commands.harmonise", "senclip.commands.composite",
    "senclip.commands.map_pixels",
    "senclip.commands.download",
    "senclip.commands.embed_ground", "senclip.commands.proxy_pairs", "senclip.commands.retrieval",
    "senclip.commands.import_sen2lucas",
    "senclip.commands.train", "senclip.commands.export", "senclip.commands.convert",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="senclip",
        description="Train, evaluate and apply ground-aligned satellite CLIP models.",
        epilog="Run `senclip COMMAND --help` for the options of each command.",
    )
    parser.add_argument("--version", action="version", version=f"senclip {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log library messages (open_clip, Lightning)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def _one_line(exc: Exception) -> str:
    """The user-facing line of an error, also when a DataLoader worker re-raised it."""
    text = str(exc).strip()
    if "Original Traceback" in text:  # torch re-raises worker errors with the traceback as message
        text = text.splitlines()[-1].split(": ", 1)[-1]
    return text.splitlines()[0] if text else type(exc).__name__


def _run(args: argparse.Namespace) -> int:
    """Run the command under its output claim (see :mod:`senclip.outputs`)."""
    plan = args.plan(args) if getattr(args, "plan", None) else None
    if plan is None:
        return int(args.func(args) or 0)
    from senclip.outputs import claim

    with claim(plan, overwrite=getattr(args, "overwrite", False)) as job:
        if job.done:
            print(f"{plan.anchor}: done already (an identical earlier run wrote it; --overwrite redoes it)",
                  file=sys.stderr)
            return 0
        job.start()
        try:
            status = int(args.func(args) or 0)
        except KeyboardInterrupt:
            raise  # the unfinished work stays for a rerun to resume
        except BaseException:
            job.abandon()
            raise
        if status == 0:
            job.finish()
        else:  # e.g. some scenes or points failed: a rerun retries them
            job.abandon()
        return status


def _show_notes() -> None:
    """Print :class:`~senclip.errors.SenclipNote` warnings as one line ``note: …`` on stderr."""
    import warnings

    from senclip.errors import SenclipNote

    default = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, SenclipNote):
            print(f"note: {str(message).splitlines()[0]}", file=sys.stderr)
        else:
            default(message, category, filename, lineno, file, line)

    warnings.showwarning = show


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR,
                        format="%(levelname)s %(name)s: %(message)s")
    _show_notes()
    try:
        return _run(args)
    except SenclipError as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # disk full, permission denied, … while writing: one line, outputs intact
        if args.verbose or not _is_io_error(exc):
            raise
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 1


def _is_io_error(exc: Exception) -> bool:
    """An operating-system or GDAL I/O failure (rasterio's errors are not all ``OSError``)."""
    return isinstance(exc, OSError) or type(exc).__module__.startswith("rasterio")


if __name__ == "__main__":
    sys.exit(main())
