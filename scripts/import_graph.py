#!/usr/bin/env python
"""The import graph of ``src/senclip``: files, arrows, cycles and arrows that point up a layer.

Usage:
    python scripts/import_graph.py [SRC]            # figures, cycles and upward arrows; exit 1 if any
    python scripts/import_graph.py [SRC] --mermaid  # the package graph as a Mermaid diagram

Every ``import`` counts, including those inside functions (a lazy import is still a dependency).
The layers, bottom to top, are those of docs/architecture.md; a package may import its own layer
and the layers below it, and train / mapping / acquire, which share a layer, not one another
(``areas``, the layer above them, composes acquire and mapping; ``explore``, above it, views
what they write).
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

LAYERS = [  # "download" and "timeseries" are packages of before the redesign (issue 13), ranked where
    {"senclip", "errors", "bands", "outputs", "net", "testing", "download",  # their code went
     "stacitem", "cluster"},
    {"data", "timeseries"},
    {"models", "losses"},
    {"prompts"},
    {"evaluate"},
    {"train", "mapping", "acquire"},
    {"areas"},
    {"explore"},
    {"commands", "cli"},
]
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def modules(src: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` under ``src/senclip``."""
    out = {}
    for path in sorted((src / "senclip").rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The senclip modules that module ``name`` imports."""
    is_pkg = path.name == "__init__.py"
    package = name if is_pkg else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[:len(parts) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `from pkg import function` -> pkg
                target = target.rpartition(".")[0]
            if target and target != name and target.startswith("senclip"):
                found.add(target)
    # `from senclip.x import y` also names senclip.x; keep the most specific module of each statement
    return {t for t in found if not any(o != t and o.startswith(t + ".") for o in found)} or found


def top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "senclip"


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one file (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


def upward(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    bad = []
    for a, targets in graph.items():
        for b in targets:
            ta, tb = top(a), top(b)
            ra, rb = RANK.get(ta, -1), RANK.get(tb, -1)
            if ta != tb and (rb > ra or (rb == ra and ra == RANK["train"])):
                bad.append((a, b))
    return sorted(bad)


def mermaid(graph: dict[str, set[str]]) -> str:
    edges = sorted({(top(a), top(b)) for a, ts in graph.items() for b in ts if top(a) != top(b)})
    lines = ["flowchart BT"]
    for i, layer in enumerate(LAYERS):
        lines.append(f"  subgraph L{i}[\"layer {i}\"]")
        lines += [f"    {n}" for n in sorted(layer) if n not in ("senclip", "cli")]
        lines.append("  end")
    lines += [f"  {a} --> {b}" for a, b in edges if "senclip" not in (a, b) and "cli" not in (a, b)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("src", nargs="?", default=str(Path(__file__).resolve().parents[1] / "src"))
    p.add_argument("--mermaid", action="store_true", help="print the package graph as Mermaid")
    args = p.parse_args(argv)
    known = modules(Path(args.src))
    graph = {name: imports(name, path, known) for name, path in known.items()}
    if args.mermaid:
        print(mermaid(graph))
        return 0
    cyc, up = cycles(graph), upward(graph)
    lines = sum(len(p.read_text().splitlines()) for p in known.values())
    print(f"files {len(known)}  lines {lines}  arrows {sum(map(len, graph.values()))}  "
          f"cycles {len(cyc)}  upward arrows {len(up)}")
    for c in cyc:
        print("cycle: " + " -> ".join(c))
    for a, b in up:
        print(f"upward: {a} -> {b}")
    return 1 if cyc or up else 0


if __name__ == "__main__":
    sys.exit(main())
