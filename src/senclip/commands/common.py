"""Options and helpers shared by several sub-commands."""

from __future__ import annotations

import argparse
import sys

PUBLISHED_DEFAULTS = {"image": "senclip-vit-b-32-avgpool", "series": "timesenclip-1x1"}
"""Registry entries used when a map command gets no ``--model``: SenCLIP ViT-B/32 (average pooling) for
tile maps, TimeSenCLIP's 1x1 encoder for per-pixel maps (``senclip models`` lists them)."""


def add_model_args(p: argparse.ArgumentParser, required: bool = True, default: str | None = None) -> None:
    g = p.add_argument_group("model")
    hint = (f"; default: the published {PUBLISHED_DEFAULTS[default]} weights of the registry (downloaded "
            "once)" if default else "")
    g.add_argument("--model", required=required, metavar="NAME",
                   help=f"open_clip architecture (e.g. ViT-B-32, RN50, senclip-tiny-vit){hint}")
    g.add_argument("--pretrained", metavar="P", default=None,
                   help="open_clip tag (openai, …), registry name (`senclip models`), hf-hub:ORG/REPO id, "
                        "a local weights file, or a downloaded MVRL/senclip-* folder (model.safetensors "
                        "+ config.json); default: random initialisation")
    g.add_argument("--checkpoint", metavar="C", default=None,
                   help="senclip image-tower checkpoint (from `senclip export`) that replaces "
                        "the image tower; the text tower stays the one of --model/--pretrained")
    g.add_argument("--preprocess", metavar="NAME|FILE", default=None,
                   help="preprocessing profile of the image tower: openai, senclip (the SenCLIP "
                        "reference's evaluation statistics, bicubic), senclip-train, or a YAML/JSON file of "
                        "per-band statistics; default: the weights' own (a registry entry's or a "
                        "checkpoint's profile, else open_clip's statistics with bilinear resize)")


class _OldSpelling(argparse.Action):
    """Old ``--bands`` for one release: stores like the new flag (``const``) and names it on stderr."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print(f"note: {option_string} is deprecated and goes away in the next release; use {self.const}",
              file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_band_flag(g, new: str, **kwargs) -> None:
    """Flag ``new`` (``--model-bands``, ``--input-bands``, …) plus ``--bands`` as its old spelling."""
    g.add_argument(new, **kwargs)
    g.add_argument("--bands", dest=kwargs.get("dest", new[2:].replace("-", "_")), action=_OldSpelling,
                   const=new, type=kwargs.get("type"), default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def add_bands_arg(p: argparse.ArgumentParser) -> None:
    """``--model-bands``: the bands the image tower takes (inflated from RGB if needed)."""
    add_band_flag(p, "--model-bands", dest="model_bands", metavar="B1,B2,...", default=None,
                  help="Sentinel-2 bands the image tower takes, in order (e.g. B04,B03,B02, or L1C for "
                       "the 13 L1C bands, L2A for the 12 L2A bands); an RGB tower is inflated: new "
                       "bands' first-layer filters start at zero (see senclip.models.multiband)")


def add_series_normalisation_arg(g) -> None:
    """``--series-normalisation``: the input rule of a TimeSenCLIP (timesen-reference) tower."""
    from senclip.models.series_rules import NORMALISATIONS

    g.add_argument("--series-normalisation", choices=NORMALISATIONS, default=None, metavar="RULE",
                   help="TimeSenCLIP (timesen-reference) towers: how L2A digital numbers are normalised "
                        "with the published Sen4Map constants. reference-clamped: (x - mean) / std "
                        "clamped to [0, 1], the evaluation loader of the published code when its numbers "
                        "were made (default of the published weights); reference-eval: the newest "
                        "evaluation loader, not clamped; reference-train: the training loader of the "
                        "published weights' time (clamped, B2 and B4 with each other's constants); none: "
                        "as given. Default: the tower's own (docs/timeseries.md)")


def add_cache_args(g) -> None:
    """``--cache-dir`` / ``--no-cache`` of the image-embedding cache (zeroshot, fewshot)."""
    g.add_argument("--cache-dir", default=None,
                   help="image-embedding cache (default $SENCLIP_CACHE/embeddings or "
                        "~/.cache/senclip/embeddings)")
    g.add_argument("--no-cache", action="store_true", help="do not read or write the embedding cache")


def use_published_default(args: argparse.Namespace, kind: str) -> None:
    """Without ``--model``: the published weights of :data:`PUBLISHED_DEFAULTS` (``kind``: image or series),
    their architecture, base CLIP and preprocessing from the registry. A terminal gets a note saying which
    (logs keep a failed command's stderr to its one error line; the map's STAC Item names the weights)."""
    from senclip.errors import SenclipError
    from senclip.models.registry import get_entry

    if args.model:
        return
    if getattr(args, "pretrained", None) or getattr(args, "checkpoint", None):
        raise SenclipError("--pretrained/--checkpoint need --model (the architecture they fit)")
    name = PUBLISHED_DEFAULTS[kind]
    entry = get_entry(name)
    if entry is None:  # pragma: no cover - packaged registry
        raise SenclipError(f"registry entry {name} is missing; pass --model")
    args.model = entry.arch
    if entry.tower:
        args.pretrained, args.checkpoint = entry.base_pretrained, name
    else:
        args.pretrained = name
    if sys.stderr.isatty():
        print(f"note: no --model: using the published weights {name} ({entry.arch}; `senclip models` lists "
              "others)", file=sys.stderr)


def add_stac_args(g, required: bool, note: str = "") -> None:
    """``--stac-url``, ``--collection``, ``--signer``: the catalogue (``acquire``, the area commands)."""
    g.add_argument("--stac-url", required=required, default=None, metavar="URL",
                   help="STAC API, e.g. https://earth-search.aws.element84.com/v1 or "
                        f"https://planetarycomputer.microsoft.com/api/stac/v1{note}")
    g.add_argument("--collection", default="sentinel-2-l2a", help="collection id (default: sentinel-2-l2a)")
    g.add_argument("--signer", default="auto", choices=("auto", "none", "planetary-computer"),
                   help="asset signing; auto: Planetary Computer for its URL, else none")


def add_retry_args(g) -> None:
    """``--retries``, ``--backoff``, ``--timeout``: how hard remote reads are tried (:func:`retry_policy`)."""
    g.add_argument("--retries", type=int, default=3,
                   help="retries of a failed request, with backoff (default: 3)")
    g.add_argument("--backoff", type=float, default=0.5,
                   help="seconds before the first retry; doubles (default: 0.5)")
    g.add_argument("--timeout", type=float, default=30.0, help="seconds per HTTP request (default: 30)")


def retry_policy(args: argparse.Namespace):
    """The :class:`~senclip.net.RetryPolicy` of :func:`add_retry_args`'s flags."""
    from senclip.net import RetryPolicy

    return RetryPolicy(attempts=args.retries + 1, backoff=args.backoff, timeout=args.timeout)


def result_paths(out: str, plot_suffix: str) -> list:
    """A results JSON, the markdown table beside it (``.md``) and its plot (``STEM + plot_suffix``)."""
    from pathlib import Path

    out = Path(out)
    return [out, out.with_suffix(".md"), out.with_name(out.stem + plot_suffix)]


def add_runtime_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("runtime")
    add_device_args(g)
    g.add_argument("--batch-size", type=int, default=64, help="images per forward pass (default: 64)")
    g.add_argument("--workers", type=_workers, default="auto",
                   help="data-loading processes (map, embed: reading threads, at least 1), or auto "
                        "(default): none on machines with up to 4 cores, where decoding in the main "
                        "process costs less than a worker that takes a core from the model "
                        "(docs/performance.md), else 2")
    g.add_argument("--no-progress", action="store_true", help="hide progress bars")


def add_device_args(g) -> None:
    """``--device`` and ``--precision``: where and in which precision the model runs."""
    from senclip.models.precision import PRECISIONS

    g.add_argument("--device", default="auto", help="cpu, cuda, cuda:1, … (default: cuda if available)")
    g.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="inference precision (default: auto = bf16 on GPUs that support it and on CPUs "
                        "with native bf16 (AVX-512 BF16 or AMX), fp16 on older GPUs, fp32 elsewhere) of the "
                        "image tower; text embeddings and every output stay fp32; the choice is shown on "
                        "a terminal and recorded in the results (docs/performance.md)")


SMALL_MACHINE_CORES = 4
"""Up to this many cores, ``--workers auto`` decodes in the main process (docs/performance.md)."""


def available_cores() -> int:
    """Cores this process may run on (its affinity mask; all CPUs where there is none)."""
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _workers(text: str) -> int:
    """``--workers``: a count, or ``auto`` (0 on small machines, else 2), resolved as it is parsed."""
    if text == "auto":
        return 0 if available_cores() <= SMALL_MACHINE_CORES else 2
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of workers or auto, got {text!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"workers must be >= 0, got {n}")
    return n


def configure_runtime() -> int:
    """Set the process up to run a model: threads and allocator; returns torch's thread count.

    Torch gets one thread per available core (unless ``OMP_NUM_THREADS`` says otherwise), and
    glibc's allocator keeps batch-sized buffers (:func:`keep_buffers_in_heap`).
    """
    import os

    import torch

    if not os.environ.get("OMP_NUM_THREADS"):
        torch.set_num_threads(available_cores())
    keep_buffers_in_heap()
    return torch.get_num_threads()


GLIBC_MMAP_THRESHOLD = 32 * 1024 * 1024
"""Allocations below this come from glibc's heap (its largest allowed threshold, 32 MiB on 64-bit)."""
GLIBC_TRIM_THRESHOLD = 1 << 30
"""Free heap above this much is returned to the system."""


def keep_buffers_in_heap() -> bool:
    """Let glibc reuse the heap for activation buffers instead of fresh ``mmap`` pages each batch.

    By default glibc serves large allocations with ``mmap`` and unmaps them when freed, so every
    batch faults in and zeroes new pages for its activations. With the thresholds above, a bf16
    ViT-B-32 forward in a fresh process ran 12 to 18 % faster (4 interleaved pairs, peak RSS +3 %;
    docs/performance.md). Not applied where the user set ``MALLOC_MMAP_THRESHOLD_`` or
    ``MALLOC_TRIM_THRESHOLD_``, or without glibc (returns False then).
    """
    import ctypes
    import os
    import sys

    if not sys.platform.startswith("linux") or any(
            k in os.environ for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's mallopt parameter numbers (malloc.h)
        return bool(libc.mallopt(m_mmap_threshold, GLIBC_MMAP_THRESHOLD)
                    and libc.mallopt(m_trim_threshold, GLIBC_TRIM_THRESHOLD))
    except (OSError, AttributeError):  # no glibc (musl, …)
        return False


def resolve_device(name: str):
    import torch

    from senclip.errors import SenclipError

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise SenclipError(f"unknown device {name!r}") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SenclipError(f"device {name} requested but CUDA is not available")
    return device


def load_model_from_args(args: argparse.Namespace):
    from senclip.models import create_model

    configure_runtime()
    device = resolve_device(args.device)
    model = create_model(args.model, pretrained=args.pretrained, checkpoint=getattr(args, "checkpoint", None),
                         device=device,
                         bands=getattr(args, "model_bands", None),
                         preprocess=getattr(args, "preprocess", None))
    if getattr(args, "series_normalisation", None):
        from senclip.models.kinds import set_series_normalisation

        set_series_normalisation(model.image_tower, args.series_normalisation)
    return set_precision_from_args(model, args)


def model_for_tiles(args: argparse.Namespace, tiles):
    """The ``--model/--pretrained/--checkpoint`` model, else the one ``tiles`` records (search, explore)."""
    from senclip.mapping.embeddings import read_tiles
    from senclip.models import create_model

    device = resolve_device(args.device)
    if args.model is None:
        recorded = read_tiles(tiles)[3]["model"]
        model = create_model(recorded["model"], pretrained=recorded.get("pretrained"),
                             checkpoint=recorded.get("checkpoint"), device=device)
    else:
        model = create_model(args.model, pretrained=args.pretrained, checkpoint=args.checkpoint,
                             device=device)
    return set_precision_from_args(model, args)


def set_precision_from_args(model, args: argparse.Namespace):
    """Apply ``--precision`` to ``model`` and say which was chosen (:func:`report_precision`)."""
    why = model.set_precision(getattr(args, "precision", "auto"))
    report_precision(model.precision, why)
    return model


def report_precision(precision: str, why: str) -> None:
    """Print the precision on a terminal's stderr as the run starts.

    Not in logs: there a failed command's stderr stays its one error line, and every result
    (JSON, markdown, map tags, caches) records the precision through ``model.describe()``.
    """
    if sys.stderr.isatty():
        print(f"precision: {precision} ({why})", file=sys.stderr)


# ---- output safety (see senclip.outputs) -------------------------------------------------------

_NOT_JOB_OPTIONS = {"func", "plan", "overwrite", "no_progress", "verbose", "workers", "restart"}


def add_overwrite_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--overwrite", action="store_true",
                   help="replace existing outputs that an earlier, different run wrote (without it they "
                        "are refused; rerunning the same command resumes or reports it done)")


def plan_options(args: argparse.Namespace) -> dict:
    """The parsed options that determine a command's result (hashed into its job)."""
    return {k: v for k, v in vars(args).items() if k not in _NOT_JOB_OPTIONS and not callable(v)}


def model_inputs(args: argparse.Namespace) -> list:
    """Weight and profile files a command reads (tags, hub ids and profile names are not files: ignored)."""
    return [getattr(args, name, None) for name in ("pretrained", "checkpoint", "preprocess")]


def spec_inputs(*specs: str | None) -> list[str]:
    """Files named by prompt/class specs (``PATH``, ``PATH:style``, comma-separated lists)."""
    from pathlib import Path

    files = []
    for spec in specs:
        for part in (spec or "").split(","):
            head, sep, _ = part.rpartition(":")
            for cand in (part, head if sep else ""):
                if cand and Path(cand).is_file():
                    files.append(cand)
                    break
    return files
