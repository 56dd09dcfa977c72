"""Which files the explorer may read: those named on the command line, or found in one output folder.

:func:`resolve_files` fixes the set once, before the server starts; nothing a request carries is
ever turned into a path. A folder is read as the area pipeline writes it (docs/explore.md, "Folder
input"): every ``**/*.item.json`` is a STAC Item whose ``senclip:product`` says what its ``data``
asset is (``class-map``, ``probabilities``, ``composite`` or ``monthly-composite``), with an href
relative to the Item. A raster named on its own is read with the Item beside it
(``landuse.tif`` -> ``landuse.item.json``) where one describes it, and a class map's Item leads to
the composite it was made from (``senclip:composite``). Files named with flags take precedence over
what a folder or an Item holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from senclip.errors import SenclipError
from senclip.stacitem import PRODUCTS, item_path

ROLES = {"class_map": ("class-map",), "composite": ("composite", "monthly-composite"),
         "probabilities": ("probabilities",)}
"""The explorer's raster roles and the ``senclip:product`` values that fill each (first preferred)."""


@dataclass(frozen=True)
class ExploreFiles:
    """The files one explorer serves (``None``: not given) and the STAC Item of each, where known.

    ``found`` names the roles filled from a folder or an Item rather than by the user: a composite
    found that way and not drawable in true colour is left out with a note, not refused.
    """

    class_map: Path
    composite: Path | None = None
    probabilities: Path | None = None
    embeddings: Path | None = None
    items: tuple[tuple[str, Path], ...] = ()  # (role, item path)
    found: tuple[str, ...] = ()

    def item(self, role: str):
        """The role's STAC Item (a :class:`pystac.Item`), or ``None``."""
        path = dict(self.items).get(role)
        return read_item(path) if path else None

    def paths(self) -> list[Path]:
        """Every file the explorer may open."""
        return [p for p in (self.class_map, self.composite, self.probabilities, self.embeddings) if p]


def read_item(path: str | Path):
    """A STAC Item read with pystac.

    Raises:
        SenclipError: a file that is not a STAC Item.
    """
    import pystac

    try:
        return pystac.Item.from_file(str(path))
    except Exception as exc:  # pystac raises JSON, key and validation errors of its own
        raise SenclipError(f"{path}: not a STAC Item ({exc})") from exc


def data_path(item) -> Path | None:
    """The absolute path of an Item's ``data`` asset (``None``: no such asset)."""
    asset = item.assets.get("data")
    return Path(asset.get_absolute_href() or "").resolve() if asset is not None else None


def find_products(folder: str | Path) -> dict[str, list[tuple[Path, Path]]]:
    """``product -> [(asset path, item path), ...]`` of the STAC Items under ``folder``.

    Raises:
        SenclipError: an Item that does not parse, or whose ``data`` asset lies outside the folder.
    """
    root = Path(folder).resolve()
    found: dict[str, list[tuple[Path, Path]]] = {p: [] for p in PRODUCTS}
    for path in sorted(root.glob("**/*.item.json")):
        item = read_item(path)
        product, asset = item.properties.get("senclip:product"), data_path(item)
        if product not in found or asset is None:
            continue
        if not asset.is_relative_to(root):
            raise SenclipError(f"{path}: its data asset {item.assets['data'].href} is outside {folder}; "
                               "name the file on the command line instead")
        found[product].append((asset, path))
    return found


def _one(found: dict, products: tuple[str, ...], folder, flag: str) -> tuple[Path, Path] | None:
    for product in products:
        entries = found[product]
        if len(entries) > 1:
            names = ", ".join(str(p.relative_to(Path(folder).resolve())) for p, _ in entries)
            raise SenclipError(f"{folder} holds {len(entries)} {product} files ({names}); "
                               f"name the one to explore with {flag}")
        if entries:
            return entries[0]
    return None


def item_beside(raster: Path, role: str) -> Path | None:
    """``raster``'s Item (``<stem>.item.json``) if there is one and it describes ``raster`` in ``role``."""
    path = item_path(raster)
    if not path.is_file():
        return None
    item = read_item(path)
    describes = data_path(item) == raster.resolve()
    return path if describes and item.properties.get("senclip:product") in ROLES[role] else None


def linked_composite(class_map_item: Path) -> Path | None:
    """The composite a class map was made from: its Item's ``senclip:composite``, relative to the Item."""
    link = read_item(class_map_item).properties.get("senclip:composite")
    return (class_map_item.parent / link).resolve() if link else None


def resolve_files(target: str | Path, composite=None, probabilities=None, embeddings=None) -> ExploreFiles:
    """The explorer's files: ``target`` is the class map, or an output folder to search.

    Raises:
        SenclipError: a missing file, a folder without (or with several) class maps.
    """
    target = Path(target)
    named = {"class_map": target, "composite": composite, "probabilities": probabilities}
    named = {role: Path(p) if p else None for role, p in named.items()}
    items: dict[str, Path] = {}
    found: list[str] = []
    if target.is_dir():
        root, products = target.resolve(), find_products(target)
        pick = _one(products, ROLES["class_map"], target, "the class map's path instead of the folder")
        if pick is None:
            raise SenclipError(f"{target} holds no class map (no STAC Item with senclip:product "
                               "'class-map'); give the map's .tif instead")
        named["class_map"], items["class_map"] = pick
        link = linked_composite(pick[1])
        picks = {"composite": (link, None) if link and link.is_relative_to(root) and link.is_file()
                 else _one(products, ROLES["composite"], target, "--composite"),
                 "probabilities": _one(products, ROLES["probabilities"], target, "--probabilities")}
        for role, entry in picks.items():
            if named[role] is None and entry:
                named[role] = entry[0]
                items |= {role: entry[1]} if entry[1] else {}
                found.append(role)
    elif named["composite"] is None and target.is_file() and (beside := item_beside(target, "class_map")):
        link = linked_composite(beside)
        if link and link.is_file():
            named["composite"] = link
            found.append("composite")
    for path in (*named.values(), embeddings):
        if path and not Path(path).is_file():
            raise SenclipError(f"file not found: {path}")
    for role, path in named.items():
        if path and role not in items and (beside := item_beside(path, role)):
            items[role] = beside
    return ExploreFiles(named["class_map"], named["composite"], named["probabilities"],
                        Path(embeddings) if embeddings else None, items=tuple(items.items()),
                        found=tuple(found))
