"""Image and text towers that wrap an open_clip model.

The image tower owns everything between a batch of scaled images and a
(normalised) embedding: resizing and per-band normalisation
(:class:`Preprocess`), the open_clip visual trunk and an optional projection
head. The text tower owns the open_clip text trunk and the tokenizer.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from senclip.bands import RGB_BANDS
from senclip.errors import SenclipError


class Preprocess(nn.Module):
    """Resize a float batch to the tower's input size and normalise per band.

    Input: ``(B, C, H, W)`` float tensor of scaled values (``[0, 1]`` for
    8-bit RGB after :class:`senclip.data.transforms.ToFloat`, surface
    reflectance for multispectral data after
    :class:`senclip.data.transforms.ScaleReflectance`). Output: the tensor the
    open_clip trunk expects. Runs on the model's device, so it is batched and
    cheap compared with the trunk.

    In order: optional per-image min-max stretch to 8 bit (``minmax``),
    optional centre crop of ``center_crop`` input pixels, resize to
    ``image_size`` with ``interpolation`` (``antialias`` for bilinear/bicubic;
    antialiased bicubic is PIL's kernel), then ``(x - mean) / std``. The
    settings come from a preprocessing profile
    (:mod:`senclip.models.preprocess`); ``profile`` names it (None: the
    weights' own statistics, antialiased bilinear resize).
    """

    def __init__(self, image_size: int, mean: Sequence[float], std: Sequence[float],
                 interpolation: str = "bilinear", antialias: bool = True, minmax: bool = False,
                 center_crop: int | None = None, profile: str | None = None) -> None:
        super().__init__()
        if len(mean) != len(std):
            raise ValueError("mean and std must have one value per band")
        self.image_size = int(image_size)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        self.configure(profile, interpolation, antialias, minmax, center_crop)

    def configure(self, name: str | None = None, interpolation: str = "bilinear", antialias: bool = True,
                  minmax: bool = False, center_crop: int | None = None) -> None:
        """Set the non-tensor settings (the statistics are the ``mean``/``std`` buffers)."""
        if interpolation not in ("bilinear", "bicubic", "nearest"):
            raise ValueError(f"unknown interpolation {interpolation!r}")
        self.profile = name
        self.interpolation = interpolation
        self.antialias = bool(antialias)
        self.minmax = bool(minmax)
        self.center_crop = int(center_crop) if center_crop else None

    def settings(self) -> dict:
        """The non-tensor settings, as :meth:`configure` takes them (``name`` = the profile)."""
        return {"name": self.profile, "interpolation": self.interpolation, "antialias": self.antialias,
                "minmax": self.minmax, "center_crop": self.center_crop}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.mean.shape[1]:
            raise ValueError(
                f"expected a (B, {self.mean.shape[1]}, H, W) batch, got {tuple(x.shape)}"
            )
        x = x.float()
        if self.minmax:  # the reference: cv2 NORM_MINMAX over the whole chip, then 8-bit integers
            lo = x.amin(dim=(1, 2, 3), keepdim=True)
            hi = x.amax(dim=(1, 2, 3), keepdim=True)
            x = torch.round((x - lo) / (hi - lo).clamp_min(1e-12) * 255.0) / 255.0
        if self.center_crop:
            c = self.center_crop
            h, w = x.shape[-2:]
            if h < c or w < c:
                raise ValueError(f"centre crop of {c} px needs inputs of at least {c} x {c}, got {h} x {w}")
            top, left = round((h - c) / 2.0), round((w - c) / 2.0)
            x = x[..., top:top + c, left:left + c]
        if x.shape[-2:] != (self.image_size, self.image_size):
            smooth = self.interpolation != "nearest"
            x = F.interpolate(
                x, size=(self.image_size, self.image_size), mode=self.interpolation,
                antialias=self.antialias and smooth, align_corners=False if smooth else None,
            )
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        extra = f", profile={self.profile}" if self.profile else ""
        return f"image_size={self.image_size}, bands={self.mean.shape[1]}, {self.interpolation}{extra}"


class ImageTower(nn.Module):
    """Satellite image encoder: preprocessing, open_clip visual trunk, head.

    Args:
        visual: the open_clip visual trunk (``CLIP.visual``).
        preprocess: resizing and normalisation applied before the trunk.
        bands: names of the input channels, in order (e.g. ``B04,B03,B02``).
        head: projection applied to the trunk output; identity for a plain
            CLIP model, a trained head (:mod:`senclip.models.head`)
            for a SenCLIP checkpoint.
    """

    def __init__(
        self,
        visual: nn.Module,
        preprocess: Preprocess,
        bands: Sequence[str] = RGB_BANDS,
        head: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.visual = visual
        self.preprocess = preprocess
        self.bands = tuple(bands)
        self.head = head if head is not None else nn.Identity()
        self.channels_last = False  # set by set_compute_dtype for ResNet trunks

    @property
    def image_size(self) -> int:
        return self.preprocess.image_size

    def set_compute_dtype(self, dtype: torch.dtype) -> None:
        """Set the trunk up for inference: weights in ``dtype``, ResNets channels-last.

        Preprocessing and head stay fp32. Called by :meth:`senclip.models.SenCLIP.set_precision`.
        On a CPU with native bf16, a bf16 ViT-B/32 trunk encodes about 2x faster than the fp32
        trunk under ``torch.autocast``, which casts every weight again at every forward; a ResNet
        trunk gains another 1.5x from channels-last convolutions (docs/performance.md).

        Raises ``ValueError`` once the weights are reduced, for any other dtype: weights rounded
        to bf16 cannot give fp32 (or fp16) results again (build the model anew).
        """
        held = next(self.visual.parameters()).dtype
        if held != torch.float32 and dtype != held:
            raise ValueError(f"the image tower's weights were rounded to {held}; build the model "
                             f"again to run it in {dtype}")
        self.visual.to(dtype)
        self.channels_last = hasattr(self.visual, "layer1")  # open_clip's ModifiedResNet
        if self.channels_last:
            self.visual.to(memory_format=torch.channels_last)

    def forward(self, images: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """Embed a batch of scaled images; L2-normalised unless told not to."""
        x = self.preprocess(images)
        layout = torch.channels_last if self.channels_last else torch.preserve_format
        x = x.to(next(self.visual.parameters()).dtype, memory_format=layout)
        features = self.head(self.visual(x).float())
        return F.normalize(features, dim=-1) if normalize else features


class TextTower(nn.Module):
    """Text encoder: the open_clip model with its visual trunk removed.

    ``encode`` tokenizes strings and returns embeddings in the shared space.
    """

    def __init__(self, clip: nn.Module, tokenizer) -> None:
        super().__init__()
        self.clip = clip
        self.tokenizer = tokenizer

    @property
    def device(self) -> torch.device:
        return next(self.clip.parameters()).device

    def forward(self, tokens: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        if not _causal_argmax_text(self.clip):
            return self.clip.encode_text(tokens, normalize=normalize)
        x = _encode_text_trimmed(self.clip, tokens)
        return F.normalize(x, dim=-1) if normalize else x

    @torch.no_grad()
    def encode(self, texts: Sequence[str], normalize: bool = True, batch_size: int = 256) -> torch.Tensor:
        """Tokenize and embed ``texts``; returns a ``(len(texts), D)`` float tensor."""
        out = []
        for i in range(0, len(texts), batch_size):
            tokens = self.tokenizer(list(texts[i:i + batch_size])).to(self.device)
            out.append(self(tokens, normalize=normalize).float())
        return torch.cat(out) if out else torch.empty(0)


def _causal_argmax_text(clip: nn.Module) -> bool:
    """Whether ``clip``'s text embedding is read at the end-of-text token behind a causal mask.

    Then nothing after a sequence's last end-of-text token reaches the embedding, and the
    context can be cut there (:func:`_encode_text_trimmed`). True for OpenAI-style CLIPs
    (open_clip ``CLIP`` with ``text_pool_type="argmax"``); other text towers run as they are.
    """
    import open_clip

    mask = getattr(clip, "attn_mask", None)
    return (isinstance(clip, open_clip.CLIP) and getattr(clip, "text_pool_type", None) == "argmax"
            and isinstance(mask, torch.Tensor) and mask.dim() == 2
            and bool(torch.isneginf(mask.triu(1)).sum() == mask.shape[0] * (mask.shape[0] - 1) // 2))


def _encode_text_trimmed(clip: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """``clip.encode_text(tokens)`` on the context up to the batch's last end-of-text token.

    Prompts are 10 to 25 tokens of CLIP's 77, so this does a third to a seventh of the work. The
    result is the same function (only the matrix shapes, hence the rounding, differ): the
    embedding is taken at each sequence's end-of-text token (the largest token id), and the
    causal mask keeps later positions from reaching it. Tested against ``encode_text``.
    """
    from open_clip.transformer import text_global_pool

    length = int(tokens.argmax(dim=-1).max()) + 1
    tokens = tokens[:, :length]
    cast_dtype = clip.transformer.get_cast_dtype()
    x = clip.token_embedding(tokens).to(cast_dtype) + clip.positional_embedding[:length].to(cast_dtype)
    x = clip.ln_final(clip.transformer(x, attn_mask=clip.attn_mask[:length, :length]))
    x = text_global_pool(x, tokens, "argmax")
    if isinstance(clip.text_projection, nn.Linear):
        return clip.text_projection(x)
    return x @ clip.text_projection if clip.text_projection is not None else x


def _groups(visual: nn.Module) -> list[list[nn.Module | nn.Parameter]]:
    """The trunk split into [stem, block 1, block 2, …, rest] for freezing."""
    names = dict(visual.named_children())
    if "transformer" in names and hasattr(visual.transformer, "resblocks"):  # open_clip ViT
        stem = [m for n, m in names.items() if n in ("conv1", "ln_pre", "patch_dropout")]
        stem += [p for n, p in visual.named_parameters(recurse=False)
                 if n in ("class_embedding", "positional_embedding")]
        return [stem, *[[b] for b in visual.transformer.resblocks]]
    if "layer1" in names:  # open_clip ModifiedResNet
        stem = [m for n, m in names.items() if not n.startswith("layer") and n != "attnpool"]
        return [stem, *[[names[f"layer{i}"]] for i in range(1, 5) if f"layer{i}" in names]]
    raise SenclipError(f"freeze_blocks is not supported for a {type(visual).__name__} trunk; use 0 or -1")


def freeze_early_blocks(tower: nn.Module, n_blocks: int) -> int:
    """Freeze the stem and the first ``n_blocks`` blocks (-1: the whole trunk); returns #frozen tensors."""
    if n_blocks == 0:
        return 0
    visual = tower.visual
    if n_blocks < 0:
        params = list(visual.parameters())
    else:
        groups = _groups(visual)
        if n_blocks > len(groups) - 1:
            raise SenclipError(f"freeze_blocks={n_blocks} but the trunk has {len(groups) - 1} blocks")
        params = []
        for g in groups[: n_blocks + 1]:
            for item in g:
                params += [item] if isinstance(item, nn.Parameter) else list(item.parameters())
    for p in params:
        p.requires_grad_(False)
    return len(params)
