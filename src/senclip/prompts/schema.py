"""Reading and validating prompt files (YAML or JSON, one schema).

The schema is documented in :mod:`senclip.prompts` and ``docs/prompts.md``.
:func:`read_prompt_file` turns a file into a :class:`PromptFile`; every
problem is a one-line :class:`~senclip.errors.SenclipError` naming the file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from senclip.errors import SenclipError

STYLES = ("generic", "aerial", "ground")
"""Prompt styles, in the order ``all`` concatenates them."""

REFERENCE_STYLE = "sentences"
"""The one style of a file in the SenCLIP code's schema ``{display name: [sentences]}``."""

CLASS_STYLES = ("aerial", "ground")
"""Styles written per class (``generic`` is a set of templates for all classes)."""

PLACEHOLDER = "{}"
TOP_KEYS = ("dataset", "description", "classes", "generic")
CLASS_KEYS = ("name", "code", "description", *CLASS_STYLES)


@dataclass(frozen=True)
class ClassPrompts:
    """Prompts of one class in a prompt file.

    Attributes:
        key: class name exactly as the dataset spells it.
        name: text that fills the generic templates (default: ``key``).
        code: optional class code (LUCAS LC1 letter, ...).
        styles: per-class prompt lists by style (``aerial``, ``ground``).
    """

    key: str
    name: str
    code: str | None = None
    styles: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class PromptFile:
    """A parsed prompt file.

    Attributes:
        source: where it came from (path as given), for error messages.
        dataset: the ``dataset`` field, if any (informational).
        classes: class key -> :class:`ClassPrompts`, in file order.
        generic: templates with ``{}`` for the class name (may be empty).
    """

    source: str
    dataset: str | None
    classes: Mapping[str, ClassPrompts]
    generic: tuple[str, ...] = ()
    schema: str = "senclip"
    """``senclip`` (this schema) or ``reference`` (the SenCLIP code's ``{display name: [sentences]}``)."""

    def styles(self) -> tuple[str, ...]:
        """Styles this file provides (for at least one class), in :data:`STYLES` order.

        A file in the reference schema has the one style ``sentences`` (``generic`` for a template list).
        """
        present = {s for c in self.classes.values() for s in c.styles}
        if self.generic:
            present.add("generic")
        return tuple(s for s in (*STYLES, REFERENCE_STYLE) if s in present)

    def prompts_for(self, key: str, style: str, name: str | None = None) -> list[str]:
        """Prompts of class ``key`` in one style (generic templates are filled in with ``name``,
        default the class's ``name``).

        Returns an empty list when the class lacks that style.
        """
        entry = self.classes[key]
        if style == "generic":
            return [t.replace(PLACEHOLDER, name or entry.name) for t in self.generic]
        return list(entry.styles.get(style, ()))


def read_prompt_file(path: str | Path) -> PromptFile:
    """Read and validate a YAML (``.yaml``/``.yml``) or JSON (``.json``) prompt file.

    Args:
        path: the file.

    Returns:
        The parsed :class:`PromptFile`.

    Raises:
        SenclipError: missing file, unparsable content, or content that does
            not follow the schema (wrong types, empty prompt lists, generic
            templates without ``{}``, unknown keys).
    """
    p = Path(path).expanduser()
    src = str(path)
    if not p.is_file():
        what = "is a directory, not a file" if p.is_dir() else "not found"
        raise SenclipError(f"prompt file {src} {what}; pass a YAML or JSON prompt file (see docs/prompts.md)")
    try:
        text = p.read_text(encoding="utf-8")
        raw = json.loads(text) if p.suffix.lower() == ".json" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as exc:
        msg = " ".join(str(exc).split()) or type(exc).__name__
        kind = "JSON" if p.suffix.lower() == ".json" else "YAML"
        raise SenclipError(f"could not parse prompt file {src} as {kind}: {msg}") from exc
    return parse_prompt_dict(raw, src)


def parse_prompt_dict(raw: object, source: str) -> PromptFile:
    """Validate an already-loaded prompt mapping (same schema as the files).

    Args:
        raw: the loaded YAML/JSON document.
        source: name used in error messages.

    Raises:
        SenclipError: the content does not follow the schema.
    """
    if is_reference_schema(raw):
        return reference_prompt_file(raw, source)
    if not isinstance(raw, dict):
        raise SenclipError(
            f"prompt file {source} must be a mapping with a 'classes' key, or the SenCLIP code's "
            "{display name: [sentences]} (see docs/prompts.md)"
        )
    _check_keys(raw, TOP_KEYS, f"prompt file {source}")
    dataset = raw.get("dataset")
    if dataset is not None and not isinstance(dataset, str):
        raise SenclipError(f"prompt file {source}: 'dataset' must be a string")
    generic = _string_list(raw["generic"], f"prompt file {source}: 'generic'") if "generic" in raw else ()
    for template in generic:
        if PLACEHOLDER not in template:
            raise SenclipError(
                f"prompt file {source}: generic template {template!r} has no {{}} placeholder "
                "for the class name"
            )
    classes_raw = raw.get("classes")
    if not isinstance(classes_raw, dict) or not classes_raw:
        raise SenclipError(
            f"prompt file {source} needs a non-empty 'classes' mapping (class name -> prompts)"
        )
    classes = {}
    for key, body in classes_raw.items():
        if not isinstance(key, str) or not key.strip():
            raise SenclipError(f"prompt file {source}: class names must be non-empty strings, got {key!r}")
        classes[key] = _parse_class(key, body, source)
    parsed = PromptFile(source=source, dataset=dataset, classes=classes, generic=generic)
    if not parsed.styles():
        raise SenclipError(
            f"prompt file {source} has no prompts: give 'generic' templates "
            "or per-class 'aerial'/'ground' lists"
        )
    return parsed


# --- the SenCLIP code's schema (see senclip.prompts.reference) ---


def is_reference_schema(raw: object) -> bool:
    """True for ``{name: [str, ...]}`` without senclip's ``classes`` key, or a list of ``{}`` templates."""
    if isinstance(raw, list):
        return bool(raw) and all(isinstance(t, str) and PLACEHOLDER in t for t in raw)
    return (isinstance(raw, dict) and bool(raw) and "classes" not in raw
            and all(isinstance(v, list) for v in raw.values()))


def reference_prompt_file(raw, source: str):
    """A reference-schema document as a :class:`PromptFile` (display names as keys).

    Raises:
        SenclipError: empty lists, non-string sentences, templates without ``{}``.
    """
    if isinstance(raw, list):
        generic = _string_list(raw, f"prompt file {source} (template list)")
        return PromptFile(source=source, dataset=None, classes={}, generic=generic, schema="reference")
    classes = {}
    for key, sentences in raw.items():
        if not isinstance(key, str) or not key.strip():
            raise SenclipError(f"prompt file {source}: class names must be non-empty strings, got {key!r}")
        where = f"prompt file {source}, class {key!r}"
        classes[key] = ClassPrompts(key=key, name=key,
                                    styles={REFERENCE_STYLE: _string_list(sentences, where)})
    return PromptFile(source=source, dataset=None, classes=classes, schema="reference")


def _parse_class(key: str, body: object, source: str) -> ClassPrompts:
    """Validate one ``classes`` entry (``None`` means: name only, for generic templates)."""
    where = f"prompt file {source}, class {key!r}"
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise SenclipError(f"{where}: expected a mapping with 'name', 'aerial' and/or 'ground' keys")
    _check_keys(body, CLASS_KEYS, where)
    name = body.get("name", key)
    if not isinstance(name, str) or not name.strip():
        raise SenclipError(f"{where}: 'name' must be a non-empty string")
    code = body.get("code")
    if code is not None and not isinstance(code, (str, int)):
        raise SenclipError(f"{where}: 'code' must be a string")
    styles = {s: _string_list(body[s], f"{where}: {s!r}") for s in CLASS_STYLES if s in body}
    return ClassPrompts(key=key, name=name.strip(), code=None if code is None else str(code), styles=styles)


def _string_list(value: object, where: str) -> tuple[str, ...]:
    """A non-empty list of non-empty strings, stripped."""
    if not isinstance(value, list):
        raise SenclipError(f"{where} must be a list of strings")
    if not value:
        raise SenclipError(f"{where} is an empty prompt list; give at least one prompt or remove the key")
    out = []
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise SenclipError(f"{where} must contain non-empty strings, got {item!r}")
        out.append(item.strip())
    return tuple(out)


def _check_keys(mapping: dict, allowed: tuple[str, ...], where: str) -> None:
    """Reject unknown keys (typos such as 'arial' would otherwise be ignored)."""
    unknown = [k for k in mapping if k not in allowed]
    if unknown:
        raise SenclipError(f"{where}: unknown key {unknown[0]!r}; allowed keys are {', '.join(allowed)}")
