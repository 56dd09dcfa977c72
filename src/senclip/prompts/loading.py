"""Choosing prompts: built-in sets per dataset, user files, styles.

Built-in sets: each dataset class's ``prompt_set`` (:data:`senclip.data.DATASETS`), plus LUCAS.

:func:`load_prompts` resolves a spec (a style name, or a file path with an
optional ``:style``) to ``{class: [prompt, ...]}`` for a dataset's classes.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import replace
from functools import cache
from pathlib import Path

from senclip.data import DATASETS
from senclip.errors import SenclipError
from senclip.prompts.schema import STYLES, ClassPrompts, PromptFile, read_prompt_file

DATA_DIR = Path(__file__).parent / "data"
ALL = "all"
FILE_SUFFIXES = (".yaml", ".yml", ".json")

BUILTIN_FILES = {name: f"{cls.prompt_set}.yaml" for name, cls in DATASETS.items() if cls.prompt_set} | {
    "lucas": "lucas.yaml"}
"""Dataset name (or ``lucas``, LUCAS LC1 land cover) -> built-in prompt file in ``prompts/data``."""


def builtin_path(dataset: str) -> Path:
    """Path of the built-in prompt file for ``dataset``.

    Raises:
        SenclipError: no built-in prompts for that dataset.
    """
    fname = BUILTIN_FILES.get(dataset.lower())
    if fname is None:
        raise SenclipError(
            f"no built-in prompts for dataset {dataset!r}; built-in sets: {', '.join(BUILTIN_FILES)}; "
            "or pass a YAML/JSON prompt file"
        )
    return DATA_DIR / fname


@cache
def _builtin(fname: str) -> PromptFile:
    pfile = read_prompt_file(DATA_DIR / fname)
    return replace(pfile, source=f"{pfile.source} (built-in)")


def builtin_prompt_file(dataset: str) -> PromptFile:
    """The parsed built-in :class:`PromptFile` of ``dataset`` (read once, then cached)."""
    return _builtin(builtin_path(dataset).name)


def available_prompt_sets() -> dict[str, list[str]]:
    """Built-in prompt sets: dataset name -> styles available (``all`` is always accepted too)."""
    return {ds: list(_builtin(fname).styles()) for ds, fname in BUILTIN_FILES.items()}


def class_info(dataset: str) -> dict[str, dict[str, str | None]]:
    """Class key -> ``{"name": ..., "code": ...}`` from the built-in file (e.g. LUCAS LC1 letters)."""
    return {k: {"name": c.name, "code": c.code} for k, c in builtin_prompt_file(dataset).classes.items()}


def load_prompts(spec: str, classes: Sequence[str], dataset: str,
                 names: dict[str, str] | None = None) -> dict[str, list[str]]:
    """Prompts for each class of a dataset.

    Args:
        spec: ``generic``, ``aerial``, ``ground`` or ``all`` (the three styles
            concatenated in that order) for the built-in set of ``dataset``; or a
            path to a YAML/JSON prompt file (all styles it has), optionally as
            ``PATH:style`` to use one style of it.
        classes: the dataset's class names, exactly as the dataset spells them.
        dataset: dataset name (``eurosat``, ``eurosat-ms``, ``bigearthnet``,
            ``lucas``, ``timeseries`` (eo-learn LULC) have built-in sets).
        names: class key -> text for the generic templates, instead of the
            file's ``name`` (``--protocol senclip`` passes the reference's display names).

    A JSON file in the SenCLIP code's schema (``{display name: [sentences]}``) is
    accepted too: its display names are mapped to the dataset's keys
    (:mod:`senclip.prompts.reference`).

    Returns:
        ``{class: [prompt, ...]}`` for exactly ``classes``, in that order
        (duplicates within a class removed, order kept).

    Raises:
        SenclipError: unknown style, no built-in prompts for the dataset, file
            not found or unparsable, a class missing from the file, a class in
            a user file that the dataset does not have, an empty prompt list.
    """
    if not classes:
        raise SenclipError(f"no classes given for dataset {dataset!r}; cannot build prompts")
    if len(set(classes)) != len(classes):
        dup = next(c for c in classes if list(classes).count(c) > 1)
        raise SenclipError(f"class {dup!r} is listed twice for dataset {dataset!r}")
    pfile, style, builtin = _resolve(spec, dataset)
    if pfile.schema == "reference":
        from senclip.prompts.reference import to_dataset_keys

        pfile = to_dataset_keys(pfile, classes, dataset)
    if not builtin:
        pfile = _current_keys(pfile, classes, dataset)
        _check_no_extra_classes(pfile, classes)
    styles = _select_styles(pfile, style)
    out = {}
    for cls in classes:
        if cls not in pfile.classes:
            raise SenclipError(
                f"prompt file {pfile.source} has no prompts for class {cls!r}{_hint(cls, pfile.classes)}"
            )
        prompts: list[str] = []
        for s in styles:
            got = pfile.prompts_for(cls, s, names.get(cls) if names else None)
            if not got:
                raise SenclipError(
                    f"prompt file {pfile.source} has no {s!r} prompts for class {cls!r}; give every class "
                    "the same styles, or pick one style with PATH:style"
                )
            for p in got:
                if p not in prompts:
                    prompts.append(p)
        out[cls] = prompts
    return out


def _resolve(spec: str, dataset: str) -> tuple[PromptFile, str | None, bool]:
    """Spec -> (prompt file, chosen style or None for all, is it built-in)."""
    if not isinstance(spec, str) or not spec.strip():
        raise SenclipError(_unknown_style_message(repr(spec)))
    spec = spec.strip()
    if spec in STYLES or spec == ALL:
        return builtin_prompt_file(dataset), spec, True
    path, style = spec, None
    head, sep, tail = spec.rpartition(":")
    if sep and head and not Path(spec).expanduser().exists():
        if tail in STYLES or tail == ALL:
            path, style = head, tail
        elif Path(head).expanduser().is_file():
            raise SenclipError(
                f"unknown prompt style {tail!r} in {spec!r}; choose one of {', '.join(STYLES)}, all"
            )
    p = Path(path).expanduser()
    looks_like_path = "/" in path or "\\" in path or p.suffix.lower() in FILE_SUFFIXES
    if not p.exists() and not looks_like_path:
        raise SenclipError(_unknown_style_message(repr(spec)))
    return read_prompt_file(path), style, False


def _select_styles(pfile: PromptFile, style: str | None) -> tuple[str, ...]:
    """Styles to concatenate; checks a chosen style exists in the file."""
    if style is None or style == ALL:
        return pfile.styles()
    if style not in pfile.styles():
        have = ", ".join(pfile.styles())
        raise SenclipError(f"prompt file {pfile.source} has no {style!r} prompts; it has: {have}")
    return (style,)


def _current_keys(pfile: PromptFile, classes: Sequence[str], dataset: str) -> PromptFile:
    """A user file of a dataset whose class keys changed (its class has ``user_class_key``, e.g.
    Sen4Map): the keys it means are renamed to the current ones; their texts stay the file's."""
    resolve = getattr(DATASETS.get(dataset.lower()), "user_class_key", None)
    if resolve is None:
        return pfile
    out: dict[str, ClassPrompts] = {}
    for key, entry in pfile.classes.items():
        cls = resolve(key, classes) or key
        if cls in out:
            raise SenclipError(f"prompt file {pfile.source}: class {cls!r} is given twice (as "
                               f"{out[cls].key!r} and {key!r})")
        out[cls] = entry
    return replace(pfile, classes={cls: replace(entry, key=cls) for cls, entry in out.items()})


def _check_no_extra_classes(pfile: PromptFile, classes: Sequence[str]) -> None:
    """A user file must not name classes the dataset does not have (typos)."""
    wanted = set(classes)
    for key in pfile.classes:
        if key not in wanted:
            raise SenclipError(
                f"unknown class {key!r} in prompt file {pfile.source}{_hint(key, classes)}; "
                f"dataset classes are {', '.join(classes)}"
            )


def _hint(name: str, choices) -> str:
    """`` (did you mean 'X'?)`` for a near miss, else an empty string."""
    lower = {c.lower(): c for c in choices}
    match = lower.get(name.lower()) or next(iter(difflib.get_close_matches(name, list(choices), n=1)), None)
    return f" (did you mean {match!r}?)" if match else ""


def _unknown_style_message(spec: str) -> str:
    return (
        f"unknown prompt style {spec}; choose one of {', '.join(STYLES)}, all, "
        "or give a path to a .yaml/.json prompt file (optionally PATH:style)"
    )
