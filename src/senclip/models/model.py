"""The SenCLIP model, apart from the factory so that tower modules can build one without a cycle."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from senclip.models.towers import Preprocess, TextTower


class SenCLIP(nn.Module):
    """A satellite image tower and a (frozen) CLIP text tower in one space.

    Attributes:
        name: architecture name.
        pretrained: where the base weights came from (``None`` if random).
        image_tower: :class:`ImageTower`, or any module mapping a batch to
            embeddings (e.g. the time-series tower).
        text_tower: :class:`TextTower`.
        logit_scale: CLIP's learned temperature (``exp`` gives the scale).
    """

    def __init__(
        self,
        name: str,
        image_tower: nn.Module,
        text_tower: TextTower,
        logit_scale: torch.Tensor,
        pretrained: str | None = None,
    ) -> None:
        super().__init__()
        self.name = name
        self.pretrained = pretrained
        self.image_tower = image_tower
        self.text_tower = text_tower
        self.register_buffer("logit_scale", logit_scale.detach().clone().float().reshape(()))
        self.checkpoint: str | None = None
        self.precision = "fp32"

    def set_precision(self, precision: str = "auto") -> str:
        """Run the image tower in ``precision`` (``auto``, ``fp32``, ``bf16``, ``fp16``) on the model's
        device, for inference; returns why it was chosen. An open_clip trunk's weights are cast
        (:meth:`~senclip.models.towers.ImageTower.set_compute_dtype`), other towers run under
        autocast; text embeddings and outputs stay fp32 (:mod:`senclip.models.precision`)."""
        from senclip.models.precision import compute_dtype, resolve_precision

        resolved, why = resolve_precision(precision, self.device)
        if not self._autocast:
            self.image_tower.set_compute_dtype(compute_dtype(resolved))
        self.precision = resolved
        return why

    @property
    def _autocast(self) -> bool:
        """Whether the image tower runs under autocast: towers that cannot hold reduced weights."""
        return not hasattr(self.image_tower, "set_compute_dtype")

    @property
    def tokenizer(self):
        return self.text_tower.tokenizer

    @property
    def preprocess(self) -> Preprocess:
        return self.image_tower.preprocess

    @property
    def device(self) -> torch.device:
        return self.logit_scale.device

    def encode_image(self, images: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """fp32 embeddings of a batch, computed in the model's precision (L2-normalised in fp32)."""
        from senclip.models.precision import autocast

        with autocast(self.precision if self._autocast else "fp32", self.device):
            out = self.image_tower(images, normalize=False)
        out = out.float()
        return F.normalize(out, dim=-1) if normalize else out

    @torch.no_grad()
    def encode_text(self, texts, normalize: bool = True) -> torch.Tensor:
        """fp32 text embeddings, whatever the precision: a run encodes its prompts once, so fp32
        costs little there, and keeps the classifier's rounding out of every prediction."""
        return self.text_tower.encode(list(texts), normalize=normalize)

    def describe(self) -> dict:
        """Identity of the weights, for result files and cache keys.

        ``preprocess`` (the settings of a preprocessing profile) is there only
        when the image tower has one, so results without profiles keep their keys.
        """
        info = {
            "model": self.name,
            "pretrained": self.pretrained,
            "checkpoint": self.checkpoint,
            "precision": self.precision,
        }
        pre = getattr(self.image_tower, "preprocess", None)
        if getattr(pre, "profile", None):
            info["preprocess"] = pre.settings()
        rule = getattr(self.image_tower, "normalisation", None)
        if rule is not None:  # a series tower's input rule (cache keys and results tell them apart)
            info["series_normalisation"] = rule
        return info


def text_embed_dim(model) -> int:
    """Output size of a SenCLIP model's text tower."""
    clip = model.text_tower.clip
    proj = getattr(clip, "text_projection", None)
    if isinstance(proj, nn.Linear):
        return proj.out_features
    if isinstance(proj, torch.Tensor):
        return proj.shape[1]
    return int(model.encode_text(["a"]).shape[-1])
