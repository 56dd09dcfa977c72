"""Run a training: build the Lightning trainer from the config, resume, fit.

Run directory (``trainer.out``)::

    config.yaml            the resolved config of the run
    checkpoints/last.ckpt  latest checkpoint (resume point; ``--resume auto``)
    checkpoints/step=N.ckpt
    logs/version_N/metrics.csv  metrics of each (re)start (Lightning CSV logger)
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

from senclip.errors import SenclipError
from senclip.train.config import TrainConfig, dump_config
from senclip.train.data import PairedDataModule
from senclip.train.module import SenclipModule, check_recipe

log = logging.getLogger(__name__)


def resolve_precision(precision: str, accelerator: str) -> tuple[str, str]:
    """Lightning's precision flag for ``trainer.precision``, and why it was chosen.

    ``auto``, ``fp32``, ``bf16`` and ``fp16`` are senclip's names
    (:func:`senclip.models.precision.resolve_precision`: ``auto`` is bf16 AMP on GPUs that
    support it and on CPUs with native bf16, fp16 AMP on other GPUs, fp32 elsewhere); any
    other value is passed to Lightning as it is (``32-true``, ``bf16-mixed``, …).
    """
    from senclip.models.precision import LIGHTNING_PRECISION, PRECISIONS
    from senclip.models.precision import resolve_precision as resolve

    if precision not in PRECISIONS:
        return precision, "requested"
    gpu = accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    name, why = resolve(precision, "cuda" if gpu else "cpu")
    return LIGHTNING_PRECISION[name], why


def _loadable(path: Path) -> bool:
    try:
        torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
        return True
    except Exception:  # a file cut short by a kill
        return False


def find_resume_checkpoint(out: str | Path) -> Path | None:
    """The newest readable checkpoint of a run: ``last.ckpt``, else the highest ``step=N.ckpt``."""
    ckdir = Path(out) / "checkpoints"
    candidates = [ckdir / "last.ckpt"]
    steps = []
    for p in ckdir.glob("step=*.ckpt"):
        try:
            steps.append((int(p.stem.split("=", 1)[1]), p))
        except ValueError:
            continue
    candidates += [p for _, p in sorted(steps, reverse=True)]
    for p in candidates:
        if p.is_file() and _loadable(p):
            return p
        if p.is_file():
            log.warning("skipping unreadable checkpoint %s", p)
    return None


def resolve_resume(resume: str | None, out: str | Path) -> Path | None:
    """``auto``: the run's latest checkpoint if any; ``none``/``None``: start fresh; else a path."""
    if resume in (None, "", "none", "never"):
        return None
    if resume == "auto":
        return find_resume_checkpoint(out)
    path = Path(resume)
    if not path.is_file():
        raise SenclipError(f"resume checkpoint not found: {resume}; "
                           "use --resume auto to pick the run's last.ckpt")
    return path


def _absolute_pretrained(cfg: TrainConfig) -> None:
    """Local base weights as an absolute path, so exports find them from anywhere."""
    p = cfg.model.pretrained
    if p and not p.startswith("hf-hub:") and Path(p).expanduser().exists():
        cfg.model.pretrained = str(Path(p).expanduser().resolve())


def keep_checkpoint_head(cfg: TrainConfig, ckpt_path: str | Path) -> None:
    """A resume keeps the head kind its checkpoint was trained with (changing ``cfg`` if needed).

    A run started before ``model.head_kind`` existed trained the projecting head;
    its ``config.yaml`` has no ``head_kind``, so it now reads as the residual head.
    """
    from senclip.train.config import upgrade_stored_config

    try:
        ckpt = torch.load(str(ckpt_path), map_location="cpu", weights_only=True, mmap=True)
        kind = upgrade_stored_config(ckpt["hyper_parameters"]["config"])["model"]["head_kind"]
    except Exception:  # an unreadable checkpoint is reported by the resume itself
        return
    if kind != cfg.model.head_kind:
        log.warning("resuming %s, trained with the %s head: model.head_kind %s -> %s", ckpt_path, kind,
                    cfg.model.head_kind, kind)
        cfg.model.head_kind = kind


def build_trainer(cfg: TrainConfig, progress: bool = True,
                  callbacks: list[Callback] | None = None) -> L.Trainer:
    """A Lightning trainer for ``cfg`` (checkpoints, CSV logs, DDP, AMP, clipping)."""
    t = cfg.trainer
    out = Path(t.out)
    ckpt = ModelCheckpoint(dirpath=out / "checkpoints", filename="step={step}", auto_insert_metric_name=False,
                           every_n_train_steps=max(t.ckpt_every_n_steps, 1), save_last=True, save_top_k=1,
                           monitor=None)
    # Lightning counts val_check_interval in batches; with accumulation a step is `accumulate` batches
    val_kwargs = {"val_check_interval": t.val_every_n_steps * max(t.accumulate, 1),
                  "check_val_every_n_epoch": None} if t.val_every_n_steps > 0 else {}
    devices = int(t.devices) if t.devices.isdigit() else t.devices
    return L.Trainer(
        default_root_dir=str(out), accelerator=t.accelerator, devices=devices, num_nodes=t.num_nodes,
        strategy=t.strategy, precision=resolve_precision(t.precision, t.accelerator)[0],
        max_steps=t.max_steps, max_epochs=t.max_epochs if t.max_steps < 0 else -1,
        gradient_clip_val=cfg.optim.grad_clip or None, accumulate_grad_batches=t.accumulate,
        deterministic=t.deterministic, log_every_n_steps=t.log_every_n_steps,
        callbacks=[ckpt, *(callbacks or [])], logger=CSVLogger(str(out), name="logs"),
        enable_progress_bar=progress, enable_model_summary=False, num_sanity_val_steps=0,
        use_distributed_sampler=False, **val_kwargs,
    )


def _distributed_initialized() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def close_process_group(trainer: L.Trainer) -> None:
    """End of a finished DDP fit: wait for every rank, then destroy the process group.

    Lightning destroys only NCCL groups (at exit); a gloo group would live on into interpreter
    shutdown with its worker threads, its socket loop and, on rank 0, the TCPStore server, and
    tearing those down during finalisation can abort the process (SIGABRT, "terminate called
    without an active exception"). Here every rank first meets the others in a barrier (no rank
    closes its connections, nor rank 0 the store, while a peer is still in a collective), then
    destroys the group while the interpreter is fully alive, which joins the gloo threads.
    """
    if not _distributed_initialized():
        return
    trainer.strategy.barrier("senclip.fit.end")
    torch.distributed.destroy_process_group()


def fit(cfg: TrainConfig, resume: str | None = "auto", progress: bool = True,
        callbacks: list[Callback] | None = None, datamodule: L.LightningDataModule | None = None) -> dict:
    """Train (or resume) the run described by ``cfg``; returns a summary dict.

    Args:
        cfg: the training config.
        resume: ``auto`` (continue from ``trainer.out``'s last checkpoint if
            there is one), ``none``, or a checkpoint path.
        progress: show Lightning's progress bar.
        callbacks: extra Lightning callbacks.
        datamodule: ready data (default: :class:`PairedDataModule` from ``cfg.data``).
    """
    _absolute_pretrained(cfg)
    check_recipe(cfg)  # option combinations that cannot train, before any data is read
    own_group = not _distributed_initialized()  # DDP: the group Lightning creates is closed after fit
    ckpt_path = resolve_resume(resume, cfg.trainer.out)
    if ckpt_path is not None:
        keep_checkpoint_head(cfg, ckpt_path)
    if datamodule is None:
        datamodule = PairedDataModule(cfg, progress=progress)
        datamodule.setup("fit")  # fail on bad data before building the model
    L.seed_everything(cfg.trainer.seed, workers=True, verbose=False)
    module = SenclipModule(cfg.to_dict())
    trainer = build_trainer(cfg, progress, callbacks)
    if trainer.is_global_zero:
        dump_config(cfg, Path(cfg.trainer.out) / "config.yaml")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*Found .* module.* in eval mode.*")
        warnings.filterwarnings("ignore", message=".*LeafSpec.*")
        warnings.filterwarnings("ignore", message=".*Checkpoint directory .* exists and is not empty.*")
        # every rank validates on the whole validation set: the epoch metrics need no sync_dist
        warnings.filterwarnings("ignore", message=".*when logging on epoch level in distributed setting.*")
        if isinstance(datamodule, PairedDataModule):  # StepBatchSampler restarts at the saved batch
            warnings.filterwarnings("ignore", message=".*your dataloader is not resumable.*")
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(ckpt_path) if ckpt_path else None)
    summary = {
        "global_step": int(trainer.global_step),
        "world_size": int(trainer.world_size),
        "global_rank": int(trainer.global_rank),
    }
    if own_group:
        close_process_group(trainer)
    last = Path(cfg.trainer.out) / "checkpoints" / "last.ckpt"
    return {
        **summary,
        "resumed_from": str(ckpt_path) if ckpt_path else None,
        "last_checkpoint": str(last) if last.exists() else None,
        "precision": str(trainer.precision),
        "metrics": {k: float(v) for k, v in trainer.callback_metrics.items()},
        "module": module,
    }
