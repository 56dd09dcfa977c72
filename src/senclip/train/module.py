"""The Lightning module that aligns a satellite tower with pooled ground embeddings.

One training step: embed the chips with the trainable tower (trunk + head),
pool the cached ground views into one target per point, gather both across
ranks (global in-batch negatives), add the queue's past targets as extra
negatives, compute the loss, then enqueue the global targets. With the
reference's loss (``loss.name: queue-ce``) only the queue gives negatives.

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

from senclip.losses import CosineLoss, InfoNCELoss, QueueCELoss, TargetQueue, gather_with_grad
from senclip.models.kinds import build_tower
from senclip.models.pooling import REFERENCE_POOLINGS, build_pooling
from senclip.train.config import TrainConfig, from_dict, upgrade_stored_config
from senclip.train.data import view_columns


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
        self.cfg: TrainConfig = from_dict(upgrade_stored_config(config))
        m = self.cfg.model
        check_recipe(self.cfg)
        base = create_model(m.name, pretrained=m.pretrained, preprocess=m.preprocess)
        self.image_tower = build_tower(m, base)
        self.target_dim = int(self.image_tower.head.config.dim_out) if hasattr(
            self.image_tower.head, "config") else (m.target_dim or None)
        if self.target_dim is None:
            from senclip.models.model import text_embed_dim

            self.target_dim = text_embed_dim(base)
        if m.head_at_inference == "drop" and hasattr(self.image_tower.head, "config"):
            width = self.image_tower.head.config.dim_in
            if width != self.target_dim:
                from senclip.errors import SenclipError

                raise SenclipError(f"model.head_at_inference: drop leaves the trunk's {width}-d output, but "
                                   f"the targets are {self.target_dim}-d; keep the head or match the widths")
        base.text_tower.requires_grad_(False)
        self._base = [base]  # a list: not registered as a submodule (frozen, not in checkpoints)
        self.pooling = build_pooling(m.pooling, self.target_dim, m.pool_out)
        self._views = view_columns(m.ground_views)
        self._raw_views = m.pooling in REFERENCE_POOLINGS
        lc = self.cfg.loss
        if lc.name == "infonce":
            self.loss_fn = InfoNCELoss(lc.temperature, lc.learn_temperature)
        elif lc.name == "queue-ce":
            self.loss_fn = QueueCELoss(lc.temperature, lc.learn_temperature)
        else:
            self.loss_fn = CosineLoss()
        self.cosine = CosineLoss() if lc.name != "cosine" and lc.cosine_weight > 0 else None
        # the random start of the queue has its own stream: it leaves the other initialisations as they were
        gen = torch.Generator().manual_seed(self.cfg.trainer.seed)
        self.queue = TargetQueue(lc.queue_size, self.target_dim, lc.queue_init,
                                 generator=gen) if lc.queue_size > 0 else None
        self._pending_rng: dict | None = None
        self._val: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._zeroshot = None

    @property
    def base_model(self):
        """The frozen base :class:`~senclip.models.SenCLIP` (its image tower is this module's)."""
        return self._base[0]

    # ---- forward -------------------------------------------------------------------------
    def targets(self, batch: dict) -> torch.Tensor:
        """Pooled, normalised ground targets ``(B, D)`` of the views in ``model.ground_views``."""
        ground, mask = batch["ground"].float(), batch["ground_mask"].bool()
        if self._raw_views and "ground_norm" in batch:  # the reference pools views as CLIP returned them
            ground = ground * batch["ground_norm"].float().unsqueeze(-1)
        if self._views is not None:
            ground, mask = ground[:, self._views], mask[:, self._views]
        return self.pooling(ground, mask)

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
        seed_tower = getattr(self.image_tower, "set_augment_seed", None)
        if seed_tower is not None:  # the tower's own augmentation (timesen-reference), seeded by the step
            seed_tower((self.cfg.trainer.seed * 1_000_003 + self.global_step) * 1009 + self.global_rank + 7)
        sat = gather_with_grad(self(images).float())
        tgt = gather_with_grad(self.targets(batch))
        negatives = self.queue.negatives() if self.queue is not None else None
        loss = self.compute_loss(sat, tgt, negatives)
        if self.queue is not None:
            self.queue.enqueue(tgt)
        bs = images.shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=bs)
        if isinstance(self.loss_fn, (InfoNCELoss, QueueCELoss)):
            self.log("train/temperature", self.loss_fn.temperature, batch_size=bs)
        return loss

    # ---- validation ----------------------------------------------------------------------
    def validation_step(self, batch: dict, batch_idx: int) -> None:
        sat = self(batch["image"]).float()
        tgt = self.targets(batch)
        # queue-ce has no in-batch negatives: it is scored against the queue (left unchanged)
        negatives = self.queue.negatives() if isinstance(self.loss_fn, QueueCELoss) else None
        self.log("val/loss", self.compute_loss(sat, tgt, negatives), batch_size=sat.shape[0])
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
        """Zero-shot top-1 of the tower as exported (no head with model.head_at_inference: drop)."""
        from senclip.models.head import head_dropped
        from senclip.train.zeroshot import ZeroShotProbe

        if self._zeroshot is None:
            self._zeroshot = ZeroShotProbe(self.cfg, self.base_model)
        with head_dropped(self.image_tower, self.cfg.model.head_at_inference == "drop") as tower:
            return self._zeroshot.top1(tower, self.device)

    # ---- optimisation ------------------------------------------------------------------------
    def configure_optimizers(self):
        o = self.cfg.optim
        opt = torch.optim.AdamW(self.param_groups(), lr=o.lr, betas=tuple(o.betas), eps=o.eps)
        if o.scheduler == "step":  # the reference: StepLR, stepped per epoch (Lightning's default interval)
            sched = torch.optim.lr_scheduler.StepLR(opt, step_size=o.step_size, gamma=o.step_gamma)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": o.step_unit}}
        if o.scheduler == "annealing":  # TimeSenCLIP: CosineAnnealingLR(T_max=10), stepped per epoch
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=o.t_max)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": o.step_unit}}
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, WarmupCosine(o.warmup_steps, total, o.min_lr_ratio))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def param_groups(self) -> list[dict]:
        """AdamW groups: weight decay on every trained parameter (``optim.decay_all``, the reference),
        or on matrices only (not biases, norms, embeddings, the temperature)."""
        o = self.cfg.optim
        trained = [(name, p) for name, p in self.named_parameters() if p.requires_grad]
        if o.decay_all:
            return [{"params": [p for _, p in trained], "weight_decay": o.weight_decay}]
        decay, no_decay = [], []
        for name, p in trained:
            (decay if p.ndim >= 2 and "embedding" not in name else no_decay).append(p)
        return [{"params": decay, "weight_decay": o.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]

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


def check_recipe(cfg: TrainConfig) -> None:
    """Combinations of options that cannot train as asked: one-line errors before anything is built."""
    from senclip.errors import SenclipError

    if cfg.loss.name == "queue-ce" and cfg.loss.queue_size < 1:
        raise SenclipError("loss.name queue-ce scores each positive against the queue only; set "
                           "loss.queue_size > 0 (the reference: 512, with loss.queue_init: random)")
    o = cfg.optim
    if o.scheduler in ("step", "annealing") and o.warmup_steps > 0:
        raise SenclipError("optim.warmup_steps belongs to the cosine scheduler; set "
                           f"optim.warmup_steps: 0 with optim.scheduler: {o.scheduler}")
    if o.scheduler == "annealing" and o.t_max < 1:
        raise SenclipError(f"optim.t_max must be >= 1, got {o.t_max}")
    if o.scheduler == "step":
        if o.step_size < 1 or o.step_gamma <= 0:
            raise SenclipError(f"optim.step_size must be >= 1 and optim.step_gamma > 0, got {o.step_size} "
                               f"and {o.step_gamma}")


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
    return from_dict(upgrade_stored_config(config), str(path)), state, ckpt


def tower_state(state: dict) -> dict:
    """The ``image_tower.*`` part of a module state dict, prefix removed."""
    return {k[len("image_tower."):]: v for k, v in state.items() if k.startswith("image_tower.")}


