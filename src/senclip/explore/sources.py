"""Which files the explorer may read: those named on the command line, or found in one output folder.

:func:`resolve_files` fixes the set once, before the server starts; nothing a request carries is
ever turned into a path. A folder is read as issue 23's area pipeline writes it (docs/explore.md,
"Folder input"): every ``**/*.item.json`` is a STAC Item whose ``senclip:product`` says what its
``data`` asset is (``class-map``, ``probabilities``, ``composite`` or ``monthly-composite``), with
an href relative to the Item. Files named with flags take precedence over what the folder holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from senclip.errors import SenclipError

PRODUCTS = ("class-map", "probabilities", "composite", "monthly-composite")


@dataclass(frozen=True)
class ExploreFiles:
    """The files one explorer serves (``None``: not given) and the STAC Item of each, where known."""

    class_map: Path
    composite: Path | None = None
    probabilities: Path | None = None
    embeddings: Path | None = None
    items: tuple[tuple[str, Path], ...] = ()  # (product, item path) of the files found in a folder

    def item(self, product: str) -> Path | None:
        return dict(self.items).get(product)

    def paths(self) -> list[Path]:
        """Every file the explorer may open."""
        return [p for p in (self.class_map, self.composite, self.probabilities, self.embeddings) if p]


def find_products(folder: str | Path) -> dict[str, list[tuple[Path, Path]]]:
    """``product -> [(asset path, item path), ...]`` of the STAC Items under ``folder``.

    Raises:
        SenclipError: an Item that does not parse, or whose ``data`` asset lies outside the folder.
    """
    import pystac

    root = Path(folder).resolve()
    found: dict[str, list[tuple[Path, Path]]] = {p: [] for p in PRODUCTS}
    for item_path in sorted(root.glob("**/*.item.json")):
        try:
            item = pystac.Item.from_file(str(item_path))
        except Exception as exc:  # pystac raises JSON, key and validation errors of its own
            raise SenclipError(f"{item_path}: not a STAC Item ({exc})") from exc
        product = item.properties.get("senclip:product")
        asset = item.assets.get("data")
        if product not in found or asset is None:
            continue
        path = Path(asset.get_absolute_href() or "").resolve()
        if not path.is_relative_to(root):
            raise SenclipError(f"{item_path}: its data asset {asset.href} is outside {folder}; "
                               "name the file on the command line instead")
        found[product].append((path, item_path))
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


def resolve_files(target: str | Path, composite=None, probabilities=None, embeddings=None) -> ExploreFiles:
    """The explorer's files: ``target`` is the class map, or an output folder to search.

    Raises:
        SenclipError: a missing file, a folder without (or with several) class maps.
    """
    target = Path(target)
    named = {"composite": composite, "probabilities": probabilities}
    items: list[tuple[str, Path]] = []
    class_map = target
    if target.is_dir():
        found = find_products(target)
        pick = _one(found, ("class-map",), target, "the class map's path instead of the folder")
        if pick is None:
            raise SenclipError(f"{target} holds no class map (no STAC Item with senclip:product "
                               "'class-map'); give the map's .tif instead")
        class_map, item = pick
        items.append(("class-map", item))
        for role, products in (("composite", ("composite", "monthly-composite")),
                               ("probabilities", ("probabilities",))):
            if named[role] is None and (pick := _one(found, products, target, f"--{role}")):
                named[role], item = pick
                items.append((next(p for p in products if found[p]), item))
    files = ExploreFiles(Path(class_map), *(Path(p) if p else None for p in named.values()),
                         Path(embeddings) if embeddings else None, items=tuple(items))
    for path in files.paths():
        if not path.is_file():
            raise SenclipError(f"file not found: {path}")
    return files
