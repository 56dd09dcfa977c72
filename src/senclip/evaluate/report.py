"""Writing results: atomic JSON, a markdown table and plots beside it."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from senclip.outputs import atomic_path, write_text


def write_json(obj: dict, path: str | Path) -> Path:
    return write_text(path, json.dumps(obj, indent=2, allow_nan=True) + "\n")


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{100 * v:.1f}"


def markdown_zeroshot(result: dict) -> str:
    """A markdown summary of a zero-shot result (one table per prompt set)."""
    lines = [f"# Zero-shot: {result['model']['model']} on {result['dataset']}", ""]
    lines.append(f"weights: {result['model']['pretrained'] or 'random init'}"
                 + (f", checkpoint: {result['model']['checkpoint']}" if result["model"].get("checkpoint") else "")
                 + (f", precision: {result['model']['precision']}"
                    if result["model"].get("precision") else ""))
    lines.append(f"protocol: {result['protocol']}, n = {result['n']}")
    if "points" in result:
        lines.append(_points_line(result["points"]))
    if "bigearthnet_rgb" in result:
        rgb = result["bigearthnet_rgb"]
        lines.append(f"fed as R, G, B: {', '.join(rgb['bands'])} (--bigearthnet-rgb {rgb['order']})"
                     + (f", stretch {rgb['stretch']}" if rgb.get("stretch") else "")
                     + (f"; {rgb['note']}" if rgb.get("note") else ""))
    if "bigearthnet_split" in result:
        split = result["bigearthnet_split"]
        lines.append(f"patches: {split['patches']} of {split['file']}, in its order")
    lines.append("")
    runs = result["runs"]
    if result.get("multilabel"):
        lines += ["| prompts | mAP macro | mAP micro | F1 micro | F1 macro |", "|---|---|---|---|---|"]
        for name, r in runs.items():
            lines.append(f"| {name} | {_fmt(r['map_macro'])} | {_fmt(r['map_micro'])} | "
                         f"{_fmt(r['f1_micro'])} | {_fmt(r['f1_macro'])} |")
    else:
        classes = list(next(iter(runs.values()))["per_class"])
        lines += ["| prompts | top-1 | top-5 | balanced |", "|---|---|---|---|"]
        for name, r in runs.items():
            lines.append(f"| {name} | {_fmt(r['top1'])} | {_fmt(r['top5'])} | {_fmt(r['balanced_accuracy'])} |")
        lines += ["", "Per-class accuracy (%):", "",
                  "| class | " + " | ".join(runs) + " |", "|---|" + "---|" * len(runs)]
        for c in classes:
            lines.append(f"| {c} | " + " | ".join(_fmt(r["per_class"][c]) for r in runs.values()) + " |")
    if "senclip_protocol" in result:
        ref = result["senclip_protocol"]
        lines += ["", "SenCLIP reference protocol (transductive: uses evaluation-set statistics; NOT "
                  "zero-shot, not comparable with the table above):", ""]
        if result.get("multilabel"):
            sub = ref.get("subset", {})
            n_sub = next(iter(ref["runs"].values()), {}).get("n_subset")
            lines += [f"share of true labels among each image's top-|y| predictions, on {n_sub} of "
                      f"{sub.get('of')} images (the reference's subset: the first {sub.get('size')} of a "
                      f"permutation seeded {sub.get('seed')}; all images when fewer). The reference ranks "
                      "the cosine; the last column divides each class by its evaluation-set mean first.", "",
                      "| prompts | top-\\|y\\| share | top-\\|y\\| share, column-mean divided |",
                      "|---|---|---|"]
            for name, r in ref["runs"].items():
                lines.append(f"| {name} | {_fmt(r['top_label_share'])} | "
                             f"{_fmt(r['top_label_share_column_mean'])} |")
        else:
            lines += ["Each class's cosine column is divided by its evaluation-set mean before ranking.", "",
                      "| prompts | top-1 | top-5 | balanced |", "|---|---|---|---|"]
            for name, r in ref["runs"].items():
                lines.append(f"| {name} | {_fmt(r['top1'])} | {_fmt(r['top5'])} | "
                             f"{_fmt(r['balanced_accuracy'])} |")
    if "timesenclip_protocol" in result:
        lines += _timesenclip_lines(result["timesenclip_protocol"])
    if "transductive" in result:
        lines += ["", "Transductive (calibrated on the evaluation set; NOT zero-shot):", ""]
        for name, r in result["transductive"]["runs"].items():
            key = "map_macro" if result.get("multilabel") else "top1"
            lines.append(f"- {name}: {key} {_fmt(r[key])}")
    return "\n".join(lines) + "\n"


def _timesenclip_lines(ref: dict) -> list[str]:
    """The TimeSenCLIP reference protocol's table: raw and column-mean-normalised scores, both averages."""
    lines = ["", "TimeSenCLIP reference protocol (bare class names, cos/2+1; the normalised row divides each "
             "class by its evaluation-set mean: transductive, NOT zero-shot):", "",
             f"n = {ref['n']}, {ref.get('classes_present', '?')} of {len(ref['prompts']['classes'])} classes "
             "present", "",
             "| scores | top-1 | top-5 | average class acc. (reference: all classes, absent = 0) | "
             "mean class acc. (senclip: classes present) |", "|---|---|---|---|---|"]
    for name, r in (("raw (cos/2+1)", ref["raw"]), ("column-mean normalised", ref)):
        lines.append(f"| {name} | {_fmt(r['top1'])} | {_fmt(r['top5'])} | "
                     f"{_fmt(r['average_class_accuracy'])} | {_fmt(r['mean_class_accuracy'])} |")
    return lines


def _points_line(info: dict) -> str:
    coords = info.get("coordinates") or {}
    order = coords.get("order")
    where = ("; its lat/lon columns are swapped (lat holds longitudes)" if order == "swapped" else
             "; its lat/lon columns are in order" if order == "as labelled" else "")
    repeated = info.get("duplicate_rows", 0)
    again = f"; {repeated} rows repeat an earlier point and are evaluated again" if repeated else ""
    return (f"points: {info['present']} of {info['listed']} listed in {info['file']} are in the file, "
            f"{info['missing_from_h5']} missing; {info['without_label']} without a {info['label_column']} "
            f"label{again}{where}")


def _save(fig, path: str | Path) -> Path:
    """Save a matplotlib figure atomically and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def plot_confusion(confusion, classes, path: str | Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conf = np.asarray(confusion, dtype=float)
    norm = conf / np.maximum(conf.sum(1, keepdims=True), 1)
    n = len(classes)
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * n, 0.8 + 0.55 * n), dpi=110)
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), classes, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    if n <= 20:
        for i in range(n):
            for j in range(n):
                if conf[i, j]:
                    ax.text(j, i, int(conf[i, j]), ha="center", va="center", fontsize=6,
                            color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
    fig.tight_layout()
    return _save(fig, path)


def plot_kshot(result: dict, path: str | Path) -> Path:
    """k-shot accuracy curve (mean ± std over seeds), with the full probe as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = result["metric"]
    fig, ax = plt.subplots(figsize=(5.5, 3.8), dpi=110)
    shots = [s for s in result["shots"] if s["k"] != "all"]
    if shots:
        ks = [s["k"] for s in shots]
        mean = np.array([s["mean"] for s in shots]) * 100
        std = np.array([s["std"] for s in shots]) * 100
        ax.errorbar(ks, mean, yerr=std, marker="o", capsize=3, label="k-shot logistic regression")
        ax.set_xscale("log")
        ax.set_xticks(ks, [str(k) for k in ks])
    for s in result["shots"]:
        if s["k"] == "all":
            ax.axhline(s["mean"] * 100, color="gray", ls="--", label=f"linear probe (all): {100 * s['mean']:.1f}")
    ax.set_xlabel("training images per class (k)")
    ax.set_ylabel(f"{metric} (%)")
    ax.set_title(f"Few-shot: {result['model']['model']} on {result['dataset']}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)
