"""The Lightning module that aligns a satellite tower with pooled ground embeddings.

One training step: embed the chips with the trainable tower (trunk + head),
pool the cached ground views into one target per point, gather both across
ranks (global in-batch negatives), add the queue's past targets as extra
negatives, compute the loss, then enqueue the global targets.

The base CLIP (text tower) is kept outside the module's parameters and
state: it is frozen, rebuilt from ``model.name``/``model.pretrained`` when a
checkpoint is loaded, and used only for zero-shot validation and export.
Checkpoints carry the config, the tower, pooling, temperature, queue, the
optimizer and the random-number generator states.
"""

from __future__ import annotations

import math
import random

import lightning as L
import numpy as np
import torch

from senclip.losses import CosineLoss, InfoNCELoss, TargetQueue, gather_with_grad
from senclip.models.kinds import build_tower
from senclip.models.pooling import build_pooling
from senclip.train.config import TrainConfig, from_dict


def dihedral_augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Apply one of the 8 flips/90-degree rotations to each image (square chips)."""
    if images.shape[-1] != images.shape[-2]:
        return images
    codes = torch.randint(0, 8, (images.shape[0],), generator=generator).tolist()
    out = []
    for img, code in zip(images, codes, strict=True):
        img = torch.rot90(img, code % 4, dims=(-2, -1))
        out.append(img.flip(-1) if code >= 4 else img)
    return torch.stack(out)


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]),
             "python_version": random.getstate()[0], "numpy": np.random.get_state()[1].tolist(),
             "numpy_pos": int(np.random.get_state()[2])}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((state["python_version"], tuple(state["python"]), None))
    np.random.set_state(("MT19937", np.asarray(state["numpy"], dtype=np.uint32), state["numpy_pos"], 0, 0.0))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class SenclipModule(L.LightningModule):
    """Satellite tower + pooling + loss (+ queue), trained with AdamW.

    Args:
        config: a :class:`~senclip.train.config.TrainConfig` as a dict
            (``cfg.to_dict()``); stored in the checkpoint's hyperparameters.
    """

    def __init__(self, config: dict) -> None:
        super().__init__()
        from senclip.models import create_model

        self.save_hyperparameters({"config": config})
        self.cfg: TrainConfig = from_dict(config)
        m = self.cfg.model
        base = create_model(m.name, pretrained=m.pretrained)
        self.image_tower = build_tower(m, base)
        self.target_dim = int(self.image_tower.head.config.dim_out) if hasattr(
            self.image_tower.head, "config") else (m.target_dim or None)
        if self.target_dim is None:
            from senclip.models.model import text_embed_dim

            self.target_dim = text_embed_dim(base)
        base.text_tower.requires_grad_(False)
        self._base = [base]  # a list: not registered as a submodule (frozen, not in checkpoints)
        self.pooling = build_pooling(m.pooling, self.target_dim)
        lc = self.cfg.loss
        infonce = lc.name == "infonce"
        self.loss_fn = InfoNCELoss(lc.temperature, lc.learn_temperature) if infonce else CosineLoss()
        self.cosine = CosineLoss() if lc.name == "infonce" and lc.cosine_weight > 0 else None
        self.queue = TargetQueue(lc.queue_size, self.target_dim) if lc.queue_size > 0 else None
        self._pending_rng: dict | None = None
        self._val: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._zeroshot = None

    @property
    def base_model(self):
        """The frozen base :class:`~senclip.models.SenCLIP` (its image tower is this module's)."""
        return self._base[0]

    # ---- forward -------------------------------------------------------------------------
    def targets(self, batch: dict) -> torch.Tensor:
        """Pooled, normalised ground targets ``(B, D)``."""
        return self.pooling(batch["ground"].float(), batch["ground_mask"].bool())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.image_tower(images, normalize=True)

    def compute_loss(self, sat: torch.Tensor, tgt: torch.Tensor, negatives=None) -> torch.Tensor:
        loss = self.loss_fn(sat, tgt, negatives)
        if self.cosine is not None:
            loss = loss + self.cfg.loss.cosine_weight * self.cosine(sat, tgt)
        return loss

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        images = batch["image"]
        if self.cfg.data.augment:
            gen = torch.Generator().manual_seed(
                (self.cfg.trainer.seed * 1_000_003 + self.global_step) * 1009 + self.global_rank)
            images = dihedral_augment(images.cpu(), gen).to(images.device)
        sat = gather_with_grad(self(images).float())
        tgt = gather_with_grad(self.targets(batch))
        negatives = self.queue.negatives() if self.queue is not None else None
        loss = self.compute_loss(sat, tgt, negatives)
        if self.queue is not None:
            self.queue.enqueue(tgt)
        bs = images.shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=bs)
        if isinstance(self.loss_fn, InfoNCELoss):
            self.log("train/temperature", self.loss_fn.temperature, batch_size=bs)
        return loss

    # ---- validation ----------------------------------------------------------------------
    def validation_step(self, batch: dict, batch_idx: int) -> None:
        sat = self(batch["image"]).float()
        tgt = self.targets(batch)
        self.log("val/loss", self.compute_loss(sat, tgt), batch_size=sat.shape[0])
        self._val.append((sat.cpu(), tgt.cpu()))

    def on_validation_epoch_end(self) -> None:
        if self._val:
            from senclip.evaluate.retrieval import retrieval_report

            sat = torch.cat([s for s, _ in self._val])
            tgt = torch.cat([t for _, t in self._val])
            self._val.clear()
            ks = [k for k in self.cfg.eval.retrieval_ks if k <= len(sat)] or [1]
            report = retrieval_report(sat, tgt, ks)
            for direction, short in (("sat_to_ground", "s2g"), ("ground_to_sat", "g2s")):
                for name, value in report[direction].items():
                    self.log(f"val/{short}_{name}", value)
            self.log("val/cosine", torch.nn.functional.cosine_similarity(sat, tgt).mean())
        if self.cfg.eval.zeroshot_root and not self.trainer.sanity_checking:
            self.log("val/zeroshot_top1", self._zeroshot_top1())

    @torch.no_grad()
    def _zeroshot_top1(self) -> float:
        from senclip.train.zeroshot import ZeroShotProbe

        if self._zeroshot is None:
            self._zeroshot = ZeroShotProbe(self.cfg, self.base_model)
        return self._zeroshot.top1(self.image_tower, self.device)

    # ---- optimisation ------------------------------------------------------------------------
    def configure_optimizers(self):
        o = self.cfg.optim
        decay, no_decay = [], []
        for name, p in self.named_parameters():
            if not p.requires_grad:
                continue
            (decay if p.ndim >= 2 and "embedding" not in name else no_decay).append(p)
        opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": o.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=o.lr, betas=tuple(o.betas), eps=o.eps)
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, WarmupCosine(o.warmup_steps, total, o.min_lr_ratio))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # ---- state ------------------------------------------------------------------------------
    def on_fit_start(self) -> None:
        self.base_model.text_tower.to(self.device)
        self.base_model.logit_scale = self.base_model.logit_scale.to(self.device)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["senclip_rng"] = _rng_state()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self._pending_rng = checkpoint.get("senclip_rng")

    def on_train_start(self) -> None:
        # restored here, after the loaders were created, so nothing consumes the stream before step 1
        if self._pending_rng is not None:
            _set_rng_state(self._pending_rng)
            self._pending_rng = None


class WarmupCosine:
    """LR factor: linear warm-up over ``warmup`` steps, then cosine decay to ``min_ratio`` at ``total``."""

    def __init__(self, warmup: int, total: int, min_ratio: float = 0.0) -> None:
        self.warmup, self.total, self.min_ratio = max(int(warmup), 0), max(int(total), 1), min_ratio

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        span = max(self.total - self.warmup, 1)
        progress = min((step - self.warmup) / span, 1.0)
        return self.min_ratio + (1 - self.min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def load_module_state(path, map_location="cpu") -> tuple[TrainConfig, dict, dict]:
    """Read a training checkpoint without code execution: ``(config, state_dict, checkpoint)``."""
    from senclip.errors import SenclipError

    try:
        ckpt = torch.load(str(path), map_location=map_location, weights_only=True)
    except FileNotFoundError as exc:
        raise SenclipError(f"checkpoint not found: {path}") from exc
    except Exception as exc:  # torch raises several error types for bad files
        raise SenclipError(f"{path}: not a readable training checkpoint ({type(exc).__name__}: "
                           f"{str(exc).splitlines()[0] if str(exc) else ''})") from exc
    try:
        config = ckpt["hyper_parameters"]["config"]
        state = ckpt["state_dict"]
    except (KeyError, TypeError) as exc:
        raise SenclipError(f"{path}: not a senclip training checkpoint (no config/state_dict); "
                           "pass the .ckpt written by `senclip train`") from exc
    return from_dict(config, str(path)), state, ckpt


def tower_state(state: dict) -> dict:
    """The ``image_tower.*`` part of a module state dict, prefix removed."""
    return {k[len("image_tower."):]: v for k, v in state.items() if k.startswith("image_tower.")}


