"""``senclip train``: align a satellite tower with cached ground-view embeddings."""

from __future__ import annotations

import argparse

HELP = "train a SenCLIP satellite tower on paired data (YAML config + overrides)"
DESCRIPTION = """\
Train the satellite image tower (trunk + head) so that its embedding of a
chip matches the pooled frozen-CLIP embeddings of the ground photos of the
same point (read from a ground-embedding cache; photos are never
re-encoded). The default head is the reference's zero-initialised residual
one: at step 0 the tower outputs LayerNorm(base CLIP embedding). Loss:
symmetric InfoNCE with learnable temperature and in-batch negatives
(optionally a FIFO queue of past targets), cosine, or the reference's
one-directional queue cross-entropy (queue-ce). AdamW with warm-up + cosine
decay (or the reference's StepLR), AMP on GPUs, gradient clipping, Lightning
DDP for several devices/nodes. configs/senclip-reference-*.yaml hold the
reference's training recipe.

Every config option can be overridden: `--set optim.lr=1e-4` (repeatable) or
the dotted flag `--optim.lr 1e-4`. The run directory (trainer.out) gets
config.yaml, checkpoints/ (last.ckpt + step=N.ckpt) and logs/version_N/metrics.csv.
With --resume auto (default) an interrupted run continues from its last
checkpoint: same batches, same random streams, same result.
"""
EPILOG = """\
examples:
  senclip train --config configs/quickstart-tiny.yaml \\
      --data.manifest proxy/manifest.csv --data.cache proxy/ground_cache
  senclip train --config configs/senclip-vitb32.yaml --set trainer.devices=4 --set optim.lr=1e-5
then: senclip export --checkpoint RUN/checkpoints/last.ckpt --out model.safetensors
"""


def _add_option_flags(p: argparse.ArgumentParser) -> None:
    from senclip.train.config import SECTIONS, option_fields

    groups = {s: p.add_argument_group(f"{s} options") for s in SECTIONS}
    for key, f in option_fields():
        default = f.default if f.default is not argparse.SUPPRESS else None
        if callable(f.default_factory):  # lists and dicts
            default = f.default_factory()
        choices = f.metadata.get("choices")
        text = f.metadata.get("help", "") + (f" ({'|'.join(choices)})" if choices else "") + f" [{default}]"
        groups[key.split(".")[0]].add_argument(f"--{key}", dest=f"opt:{key}", default=None, metavar="V",
                                               help=text.replace("%", "%%"))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help=HELP, description=DESCRIPTION, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", metavar="YAML", default=None, help="training config (see configs/*.yaml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one option, e.g. --set optim.lr=1e-4 (repeatable)")
    p.add_argument("--resume", default="auto", metavar="auto|none|CKPT",
                   help="auto: continue from the run's last checkpoint if any (default); none: start "
                        "fresh; or a checkpoint path")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    from senclip.commands.common import add_overwrite_arg

    add_overwrite_arg(p)
    _add_option_flags(p)
    p.set_defaults(func=run, plan=plan)


def _is_rank_zero() -> bool:
    """Whether this process is the global rank 0 (the only one that writes the run folder)."""
    import os

    return all(os.environ.get(k, "0") == "0" for k in ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK"))


def plan(args: argparse.Namespace):
    """The run folder (trainer.out) against the config, data and weights it reads; rank 0 only."""
    from senclip.outputs import Plan

    if args.print_config or not _is_rank_zero():
        return None
    cfg = resolve_config(args)
    options = cfg.to_dict()
    options["data"].pop("workers", None)
    d = cfg.data
    resume = args.resume if args.resume not in ("auto", "none") else None
    return Plan("train", folders=[cfg.trainer.out], options={"config": options, "resume": args.resume},
                inputs=[args.config, d.manifest, d.cache, d.val_manifest, d.val_cache, cfg.model.pretrained,
                        resume])


def resolve_config(args: argparse.Namespace):
    """The config of ``args``: YAML, then ``--set`` overrides, then dotted flags."""
    from senclip.train.config import load_config

    flags = {k[4:]: v for k, v in vars(args).items() if k.startswith("opt:") and v is not None}
    cfg = load_config(args.config, args.overrides)
    for key, value in flags.items():
        from senclip.train.config import set_option

        set_option(cfg, key, value)
    return cfg


def run(args: argparse.Namespace) -> int:
    import yaml

    cfg = resolve_config(args)
    if args.print_config:
        print(yaml.safe_dump(cfg.to_dict(), sort_keys=False), end="")
        from senclip.models.kinds import get_kind

        count = get_kind(cfg.model.tower).count
        if count is not None:
            n = count(cfg.model)
            print(f"# model.tower {cfg.model.tower}: {n:,} parameters (without a projection head)")
        return 0
    import logging

    from senclip.commands.common import configure_runtime, report_precision
    from senclip.train.run import fit, resolve_precision

    # threads and allocator as for inference; when Lightning launches several processes on a node
    # it gives each its share of the available cores itself (unless OMP_NUM_THREADS is set)
    configure_runtime()

    if not getattr(args, "verbose", False):
        for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
            logging.getLogger(name).setLevel(logging.WARNING)
    if _is_rank_zero():
        report_precision(*resolve_precision(cfg.trainer.precision, cfg.trainer.accelerator))
    summary = fit(cfg, resume=args.resume, progress=not args.no_progress)
    world = summary["world_size"]
    ranks = f" (rank {summary['global_rank']} of {world})" if world > 1 else ""
    print(f"trained to step {summary['global_step']}{ranks} in {summary['precision']}; "
          f"last checkpoint: {summary['last_checkpoint']}")
    return 0
