"""The registry of series sources: each kind of input, declared once; :func:`open_series` asks it.

A source kind (``eopatch``: an eo-learn EOPatch folder; ``sen4map``: a Sen4Map HDF5 file;
``dated-folder``: a folder of dated GeoTIFFs; ``stack``: one time-major GeoTIFF or NetCDF cube;
``stac-area``: an area and a time range in a STAC API) is one module of this package that
registers a :class:`SourceKind`: how to recognise a path (``detect``) and how to open it as a
:class:`~senclip.data.series.io.SeriesSource` (``open``). :func:`open_series` tries the kinds in
``priority`` order and opens the first that recognises the path; no caller tests a path's type
itself. Adding a kind is adding one module here (plus its test), found by listing the package as
the tower kinds are (:mod:`senclip.models.kinds`). A kind that needs a higher layer registers
itself from there and is declared as an entry point of the group ``senclip.sources``
(``pyproject.toml``), which the registry loads when it lists its kinds: the STAC area (it searches
and loads through :mod:`senclip.acquire`) is :mod:`senclip.acquire.area_source`. So an area request
opens wherever :func:`open_series` is called, whatever was imported before, and the data layer never
imports the acquisition layer itself.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from senclip.errors import DatasetNotFoundError, SenclipError


@dataclass(frozen=True)
class SourceKind:
    """One kind of series input.

    Attributes:
        name: the kind's name (messages, ``senclip`` docs).
        detect: ``detect(path) -> bool``: whether ``path`` (a :class:`~pathlib.Path`) is of this kind.
        open: ``open(path, **options) -> SeriesSource``; options a kind does not use are ignored
            (``dates``, ``bands``, ``mask``, ``mask_band``, ``feature``).
        priority: kinds are tried in increasing priority (specific before general).
        description: one line for help texts.
    """

    name: str
    detect: Callable[[Path], bool]
    open: Callable
    priority: int = 50
    description: str = ""


_KINDS: dict[str, SourceKind] = {}
ENTRY_POINTS = "senclip.sources"
_plugins_loaded = False


def register_source(kind: SourceKind) -> SourceKind:
    """Add (or replace) a source kind; returns it."""
    _KINDS[kind.name] = kind
    return kind


def source_kinds() -> list[SourceKind]:
    """The registered kinds in the order they are tried (this package's modules imported first)."""
    global _plugins_loaded
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    if not _plugins_loaded:
        _plugins_loaded = True
        _load_entry_points()
    return sorted(_KINDS.values(), key=lambda k: (k.priority, k.name))


def _load_entry_points() -> None:
    """Import the modules declared in the ``senclip.sources`` entry-point group (they register their
    kinds); one that fails to import is left out with a warning naming it."""
    import warnings
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINTS):
        try:
            ep.load()
        except Exception as exc:  # a broken plugin must not stop the built-in kinds
            warnings.warn(f"series source kind {ep.name!r} ({ep.value}) not loaded: {exc}", stacklevel=3)


def find_kind(path) -> SourceKind:
    """The kind of ``path``.

    Raises:
        DatasetNotFoundError: nothing at ``path``.
        SenclipError: no kind recognises it.
    """
    path = Path(path)
    if not path.exists():
        raise DatasetNotFoundError(f"time series not found: {path}")
    for kind in source_kinds():
        if kind.detect(path):
            return kind
    known = ", ".join(k.name for k in source_kinds())
    raise SenclipError(f"{path} is not a series senclip reads ({known})")


def open_series(path, dates=None, bands=None, mask=None, mask_band: str = "CLM", feature: str = "NDVI"):
    """Open a series from a path, whatever its kind (see the module docstring).

    Args:
        path: the input.
        dates: acquisition dates of a stack (list, comma-separated string or text file).
        bands: band names, overriding what the files say (a STAC area: the bands to load).
        mask: separate validity raster of a stack (``T`` bands, non-zero = invalid).
        mask_band: name of a per-step cloud band inside the rasters (non-zero = cloud).
        feature: EOPatch data feature.

    Raises:
        DatasetNotFoundError: nothing readable at ``path``.
        SenclipError: dates, bands or masks that do not fit.
    """
    kind = find_kind(path)
    return kind.open(Path(path), dates=dates, bands=bands, mask=mask, mask_band=mask_band, feature=feature)


__all__ = ["SourceKind", "find_kind", "open_series", "register_source", "source_kinds"]
