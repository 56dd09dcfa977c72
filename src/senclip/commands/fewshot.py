"""``senclip fewshot``: k-shot logistic regression and linear probe on frozen embeddings."""

from __future__ import annotations

import argparse

from senclip.commands.common import (
    add_bands_arg,
    add_cache_args,
    add_model_args,
    add_overwrite_arg,
    add_runtime_args,
    add_series_normalisation_arg,
    model_inputs,
    plan_options,
    result_paths,
)

HELP = "k-shot logistic regression / linear probe on frozen image embeddings"
DESCRIPTION = """\
Embed a training folder and an evaluation folder with the frozen image tower,
then for each k draw k images per class from the training set (one draw per
seed), fit a logistic regression and measure top-1 accuracy on the whole
evaluation set. Reports mean ± std over seeds in OUT (JSON), OUT with .md, and
a k-shot curve OUT with _curve.png. `--shots all` adds a full linear probe whose
regularisation is chosen on a split of the training data only.
"""
EPILOG = """\
example:
  senclip fewshot --model ViT-B-32 --pretrained openai --dataset eurosat \\
      --data eurosat/train --eval-data eurosat/test --shots 1,2,5,10,15,20,all --seeds 5 --out fewshot.json
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fewshot", help=HELP, description=DESCRIPTION, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(p)
    add_bands_arg(p)
    g = p.add_argument_group("data")
    g.add_argument("--dataset", default="eurosat", metavar="NAME",
                   help="eurosat | eurosat-ms | timeseries (single-label datasets; default eurosat)")
    g.add_argument("--data", required=True, metavar="TRAIN_DIR", help="training folder (shots are drawn here)")
    g.add_argument("--eval-data", required=True, metavar="TEST_DIR", help="evaluation folder")
    g.add_argument("--shots", default="1,2,5,10,15,20", help="comma-separated k values and/or 'all' "
                   "(default 1,2,5,10,15,20)")
    g.add_argument("--seeds", type=int, default=5, help="draws per k (default 5)")
    g.add_argument("--time-steps", type=int, choices=(12, 4, 1), default=12,
                   help="time-series towers: 12 months, 4 seasonal or 1 annual median (default: 12)")
    add_series_normalisation_arg(g)
    o = p.add_argument_group("output")
    o.add_argument("--out", required=True, metavar="FEWSHOT.json")
    o.add_argument("--save-classifier", metavar="CLF.safetensors", default=None,
                   help="save the classifier of the last k (first seed) for `senclip map --classifier`")
    add_cache_args(o)
    add_overwrite_arg(p)
    add_runtime_args(p)
    p.set_defaults(func=run, plan=plan)


def report_paths(out: str):
    """The results JSON, its markdown table and k-shot curve."""
    return result_paths(out, "_curve.png")


def plan(args: argparse.Namespace):
    from senclip.outputs import Plan

    outputs = report_paths(args.out) + ([args.save_classifier] if args.save_classifier else [])
    return Plan("fewshot", outputs=outputs, options=plan_options(args),
                inputs=[*model_inputs(args), args.data, args.eval_data])


def _parse_shots(text: str) -> list:
    from senclip.errors import SenclipError

    shots = []
    for part in (s.strip() for s in text.split(",") if s.strip()):
        if part == "all":
            shots.append("all")
        elif part.isdigit() and int(part) > 0:
            shots.append(int(part))
        else:
            raise SenclipError(f"--shots: {part!r} is neither a positive integer nor 'all'")
    if not shots:
        raise SenclipError("--shots is empty")
    return sorted(set(s for s in shots if s != "all")) + (["all"] if "all" in shots else [])


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from senclip.commands.common import load_model_from_args, resolve_device
    from senclip.data import get_dataset
    from senclip.errors import SenclipError
    from senclip.evaluate.embeddings import default_cache_dir, encode_dataset
    from senclip.evaluate.fewshot import run_fewshot
    from senclip.evaluate.report import plot_kshot, write_json
    from senclip.outputs import write_text

    out, md_path, curve = report_paths(args.out)
    shots = _parse_shots(args.shots)
    if args.seeds < 1:
        raise SenclipError("--seeds must be at least 1")
    device = resolve_device(args.device)
    model = load_model_from_args(args)
    from senclip.models.kinds import set_time_steps

    set_time_steps(model.image_tower, args.time_steps)
    train = get_dataset(args.dataset, args.data, bands=model.image_tower.bands)
    test = get_dataset(args.dataset, args.eval_data, bands=model.image_tower.bands)
    if train.multilabel:
        raise SenclipError(f"few-shot evaluation supports single-label datasets; {args.dataset} is multi-label")
    if list(train.classes) != list(test.classes):
        raise SenclipError("training and evaluation folders have different class lists")
    cache = None if args.no_cache else (args.cache_dir or default_cache_dir())
    kw = dict(batch_size=args.batch_size, workers=args.workers, device=device,
              cache_dir=cache, progress=not args.no_progress)
    train_emb, test_emb = encode_dataset(model, train, **kw), encode_dataset(model, test, **kw)
    shots_res, clf = run_fewshot(train_emb, train.labels, test_emb, test.labels, list(train.classes), shots,
                                 args.seeds, model.describe(), progress=not args.no_progress)
    result = {
        "protocol": "few-shot logistic regression on frozen embeddings; C chosen on the training data only",
        "metric": "top1",
        "model": model.describe(),
        "dataset": train.name,
        "data": str(Path(args.data).resolve()),
        "eval_data": str(Path(args.eval_data).resolve()),
        "n_train_pool": len(train),
        "n": len(test),
        "seeds": args.seeds,
        "shots": shots_res,
    }
    plot_kshot(result, curve)
    lines = ["| k | top-1 (%) mean ± std |", "|---|---|"]
    lines += [f"| {s['k']} | {100 * s['mean']:.1f} ± {100 * s['std']:.1f} |" for s in shots_res]
    write_text(md_path, "\n".join(lines) + "\n")
    if args.save_classifier and clf is not None:
        clf.save(args.save_classifier)
    write_json(result, out)
    print("\n".join(lines))
    return 0
