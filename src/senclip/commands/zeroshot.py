"""``senclip zeroshot``: inductive zero-shot evaluation with prompt ensembles."""

from __future__ import annotations

import argparse
import sys

from senclip.bands import RGB_ORDERS, STRETCHES
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
    spec_inputs,
)
from senclip.evaluate.senclip_protocol import SUBSET_RULES

SEN4MAP_LABEL_SETS = ("lc1", "lu1", "crop", "eunis", "bioregion")
"""``--labels`` choices: :data:`senclip.data.sen4map_labels.LABEL_SETS`, written out (a test holds them
equal) because importing anything of :mod:`senclip.data` loads torch, which ``--help`` must not."""

HELP = "zero-shot classification of a labelled dataset with text prompts"
DESCRIPTION = """\
Classify every image of a labelled dataset by comparing its embedding with the
averaged text embeddings of each class's prompts, and report accuracy.

The protocol is inductive: no statistic of the evaluation set is used, so each
image's prediction depends only on that image and the prompts. Writes OUT
(JSON), OUT with .md (a table) and, for single-label data, OUT with
_confusion.png.
"""
EPILOG = """\
examples:
  senclip zeroshot --model ViT-B-32 --pretrained openai --dataset eurosat \\
      --data EuroSAT/2750 --prompts generic,aerial,ground --out clip.json
  senclip zeroshot --model ViT-B-32 --pretrained openai --checkpoint senclip.safetensors \\
      --dataset bigearthnet --data BigEarthNet-v1.0 --prompts all --out ben.json
  senclip zeroshot --model ViT-B-32 --pretrained SenCLIP_AvgPool_ViTB32.ckpt --dataset eurosat \\
      --data EuroSAT/2750 --prompts prompt_eurosat_ground_mixed.json --protocol senclip --out ref.json
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("zeroshot", help=HELP, description=DESCRIPTION, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(p)
    add_bands_arg(p)
    g = p.add_argument_group("data")
    g.add_argument("--dataset", required=True, metavar="NAME",
                   help="eurosat | eurosat-ms | bigearthnet | timeseries | sen4map")
    g.add_argument("--data", required=True, metavar="DIR", help="dataset root folder")
    g.add_argument("--labels", choices=SEN4MAP_LABEL_SETS, default=None,
                   help="sen4map: label set: LUCAS land cover, land use, crop type, ecosystem type (EUNIS) "
                        "or biogeographical region (default lc1); classes as the TimeSenCLIP reference "
                        "names them")
    g.add_argument("--points", default=None, metavar="TEST.csv",
                   help="sen4map: evaluate only the points of a test list in the published format "
                        "(im_id, lat, lon, lc_label, lu_label, crop_label, nuts_label, bioregion_class, "
                        "eunis_class; e.g. the reference's Sen4Map_Test_all_labels.csv), with the labels of "
                        "its columns; listed points the file lacks are counted and reported")
    g.add_argument("--skip-bad", action="store_true",
                   help="sen4map: leave out unreadable points (one line each) instead of stopping")
    g.add_argument("--time-steps", type=int, choices=(12, 4, 1), default=12,
                   help="time-series towers: 12 months, 4 seasonal or 1 annual median (default: 12)")
    add_series_normalisation_arg(g)
    g.add_argument("--bigearthnet-rgb", choices=tuple(RGB_ORDERS), default="rgb",
                   help="bigearthnet with an RGB tower: the bands fed as red, green, blue. rgb: B04,B03,B02 "
                        "(default); reference-bgr: B02,B03,B04, the order of the SenCLIP reference code "
                        "(src/dataset_bigearthnet.py), which puts blue in the red channel of a CLIP trained "
                        "on RGB photos: only to reproduce the reference's numbers; recorded in the results")
    g.add_argument("--bigearthnet-stretch", choices=STRETCHES, default="true-colour",
                   help="bigearthnet with an RGB tower: true-colour (default: reflectance x 3.5, clipped) or "
                        "reference-minmax, the SenCLIP reference's per-image stretch (the three bands' "
                        "digital numbers together to 0-255, truncated to 8 bit; src/dataset_bigearthnet.py)")
    g.add_argument("--bigearthnet-split", default=None, metavar="SPLIT.csv",
                   help="bigearthnet: the patches of a split file, in its order (first column: patch "
                        "name), e.g. torchgeo's bigearthnet-test.csv, the reference's evaluation set; "
                        "default: every patch folder under --data, sorted")
    g.add_argument("--bigearthnet-subset", choices=SUBSET_RULES, default=None,
                   help="bigearthnet with --protocol senclip: the reference's subset, 27,000 images of "
                        "random_split after manual_seed(42), of which its DataLoader(batch 32, drop_last) "
                        "evaluates 26,976 (random-split-drop-last, default) or all 27,000 (random-split)")
    g.add_argument("--download", action="store_true",
                   help="fetch, verify and extract the dataset into --data if it is missing")
    g.add_argument("--prompts", default="generic", metavar="SPEC[,SPEC…]",
                   help="generic | aerial | ground | all (the three together) | a YAML/JSON prompt file "
                        "(PATH or PATH:style); several comma-separated sets are each evaluated "
                        "(default: generic)")
    o = p.add_argument_group("output")
    o.add_argument("--out", required=True, metavar="RESULTS.json", help="results file")
    o.add_argument("--calibrate", action="store_true",
                   help="also report a transductive variant (logits centred on the evaluation-set "
                        "mean) under the separate key 'transductive'; never mixed with zero-shot")
    o.add_argument("--protocol", choices=("inductive", "senclip", "timesenclip"), default="inductive",
                   help="senclip: also report the SenCLIP reference scripts' protocol (EuroSAT display "
                        "class names, each class's logits divided by their evaluation-set mean, "
                        "BigEarthNet-19 share of true labels in the top-|y| on a seeded 27,000-image "
                        "subset) under the separate, transductive key 'senclip_protocol'; the "
                        "inductive numbers are unchanged; timesenclip: likewise the TimeSenCLIP "
                        "reference protocol (bare class names, cos/2+1, each class divided by its "
                        "evaluation-set mean) under 'timesenclip_protocol' (default: inductive only)")
    o.add_argument("--threshold", type=float, default=None,
                   help="multi-label only: softmax probability at which a class counts as predicted "
                        "(default 1/number of classes)")
    add_cache_args(o)
    add_overwrite_arg(p)
    add_runtime_args(p)
    p.set_defaults(func=run, plan=plan)


def report_paths(out: str):
    """The results JSON and the markdown table and confusion plot written beside it."""
    return result_paths(out, "_confusion.png")


def plan(args: argparse.Namespace):
    from senclip.outputs import Plan

    return Plan("zeroshot", outputs=report_paths(args.out), options=plan_options(args),
                inputs=[*model_inputs(args), args.data, args.points, args.bigearthnet_split,
                        *spec_inputs(args.prompts)])


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from senclip.commands.common import load_model_from_args, resolve_device
    from senclip.evaluate.embeddings import default_cache_dir
    from senclip.evaluate.zeroshot import evaluate_zeroshot
    from senclip.models.kinds import set_time_steps

    _check_flags(args)  # before any download or model load
    specs = [s for s in args.prompts.split(",") if s]
    device = resolve_device(args.device)
    if args.download:
        from senclip.data.download import ensure_dataset

        ensure_dataset(args.dataset, args.data, progress=not args.no_progress)
    model = load_model_from_args(args)
    set_time_steps(model.image_tower, args.time_steps)
    rgb_order = _bigearthnet_rgb(args, model.image_tower.bands)
    dataset = _dataset(args, model.image_tower, rgb_order)
    options = {"subset_rule": args.bigearthnet_subset} if args.bigearthnet_subset else None
    result = evaluate_zeroshot(
        model, dataset, specs, batch_size=args.batch_size, device=device, workers=args.workers,
        cache_dir=None if args.no_cache else (args.cache_dir or default_cache_dir()),
        progress=not args.no_progress, calibrate=args.calibrate, threshold=args.threshold,
        protocol=args.protocol, protocol_options=options,
    )
    result["data"] = str(Path(args.data).resolve())
    if args.bigearthnet_split:
        result["bigearthnet_split"] = {"file": str(Path(args.bigearthnet_split).resolve()),
                                       "patches": len(dataset), "order": "as listed"}
    if getattr(dataset, "points_info", None):
        result["points"] = info = dataset.points_info
        if info["missing_from_h5"]:
            print(f"note: {info['missing_from_h5']} of {info['listed']} points listed in {info['file']} are "
                  f"not in {args.data} (e.g. {', '.join(info['missing_examples'][:3])})", file=sys.stderr)
    if rgb_order is not None:
        result["bigearthnet_rgb"] = rgb_order
    _write_reports(result, args.out, specs[0])
    return 0


def _check_flags(args: argparse.Namespace) -> None:
    """Flags that apply to one dataset or protocol only, refused elsewhere in one line.

    Raises:
        SenclipError: a flag given with a dataset or protocol it does not apply to.
    """
    from senclip.errors import SenclipError

    if args.dataset != "sen4map" and (args.labels or args.points or args.skip_bad):
        raise SenclipError("--labels, --points and --skip-bad apply to --dataset sen4map")
    if args.bigearthnet_split and args.dataset != "bigearthnet":
        raise SenclipError("--bigearthnet-split applies to --dataset bigearthnet")
    if args.bigearthnet_subset and not (args.dataset == "bigearthnet" and args.protocol == "senclip"):
        raise SenclipError("--bigearthnet-subset applies to --dataset bigearthnet with --protocol senclip")
    for flag in _rgb_flags(args):
        if args.dataset != "bigearthnet":
            raise SenclipError(f"{flag} applies only to --dataset bigearthnet with an RGB tower; got "
                               f"--dataset {args.dataset}")


def _rgb_flags(args: argparse.Namespace) -> list[str]:
    """``--bigearthnet-rgb`` / ``--bigearthnet-stretch`` with their values where not the defaults."""
    return [f"{flag} {value}" for flag, value, default in (
        ("--bigearthnet-rgb", args.bigearthnet_rgb, "rgb"),
        ("--bigearthnet-stretch", args.bigearthnet_stretch, "true-colour")) if value != default]


def _dataset(args: argparse.Namespace, model_tower, rgb_order: dict | None):
    """The evaluated dataset, with the options its flags give (the RGB stretch resizes to the tower's
    input size where the reference does)."""
    from senclip.data import get_dataset
    from senclip.data.bigearthnet import rgb_transforms

    extra = {k: v for k, v in (("labels", args.labels), ("skip_bad", args.skip_bad), ("points", args.points),
                               ("split_file", args.bigearthnet_split)) if v}
    size = getattr(getattr(model_tower, "preprocess", None), "image_size", None)
    transforms = ("default" if rgb_order is None
                  else rgb_transforms(rgb_order["order"], args.bigearthnet_stretch, size))
    return get_dataset(args.dataset, args.data, bands=model_tower.bands, transforms=transforms, **extra)


def _write_reports(result: dict, out: str, first_spec: str) -> None:
    """The results JSON, its markdown table (also printed) and, for single-label data, the confusion plot."""
    from senclip.evaluate.report import markdown_zeroshot, plot_confusion, write_json
    from senclip.outputs import write_text

    out, md_path, confusion = report_paths(out)
    md = markdown_zeroshot(result)
    if not result["multilabel"]:
        title = f"{result['model']['model']} zero-shot ({first_spec}), top-1 {100 * result['top1']:.1f}%"
        plot_confusion(result["confusion"], result["classes"], confusion, title)
    write_text(md_path, md)
    write_json(result, out)
    print(md)


def _bigearthnet_rgb(args: argparse.Namespace, tower_bands) -> dict | None:
    """What ``--bigearthnet-rgb`` feeds an RGB tower on BigEarthNet (None: not that case).

    Raises:
        SenclipError: ``--bigearthnet-rgb`` / ``--bigearthnet-stretch`` for a tower that is not RGB (the
            dataset was checked by :func:`_check_flags`).
    """
    from senclip.bands import RGB_BANDS
    from senclip.errors import SenclipError

    rgb_tower = tuple(tower_bands) == RGB_BANDS
    for flag in _rgb_flags(args):
        if not rgb_tower:
            raise SenclipError(f"{flag} applies only to --dataset bigearthnet with an RGB tower "
                               f"({','.join(RGB_BANDS)}); got a tower of {','.join(tower_bands)}")
    if args.dataset != "bigearthnet" or not rgb_tower:
        return None
    record = {"order": args.bigearthnet_rgb, "bands": list(RGB_ORDERS[args.bigearthnet_rgb])}
    if args.bigearthnet_rgb != "rgb":
        record["note"] = ("reproduction only: the SenCLIP reference's band order "
                          "(src/dataset_bigearthnet.py), blue fed into the red channel of a CLIP trained on "
                          "RGB photos, red into the blue")
    if args.bigearthnet_stretch != "true-colour":
        record["stretch"] = args.bigearthnet_stretch
    return record
