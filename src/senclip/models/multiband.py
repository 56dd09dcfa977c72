"""Multispectral image towers: inflate an RGB (or any) tower to other bands.

An open_clip visual trunk sees its input through one first convolution (the
ViT patch embedding ``conv1``, the ResNet stem ``conv1``, a timm
``patch_embed.proj`` …). :func:`set_input_bands` replaces that convolution, in
place, by one with a filter per requested band, so a checkpoint trained on
RGB is the starting point of a 12- or 13-band Sentinel-2 tower.

Band names are the identity of the channels: ``tower.bands`` lists them in
input order, checkpoints store them, and inputs are matched by name
(:func:`senclip.bands.band_indices`), never by position.

Inflation rules (``rule=``) for the filters of bands the tower does not
have yet; bands it already has keep their filters unchanged:

``"zero"`` (default)
    new filters start at zero. The inflated tower computes exactly what the
    original tower computes on its own bands, whatever the new bands hold,
    and training learns how much to use them (their gradients are not zero).
``"mean"``
    new filters start as the mean of the existing filters, and all filters
    are rescaled by ``n_old / n_new``; a scene where every band carries the
    same normalised signal gives the same first-layer response as before.
``"nearest"``
    a new band copies the filter of the existing band nearest in central
    wavelength (Sentinel-2 MSI table :data:`S2_WAVELENGTH_NM`); names that are
    not Sentinel-2 bands fall back to ``"mean"`` for that band (without the
    rescaling).

Normalisation: the tower's :class:`~senclip.models.towers.Preprocess` keeps
the mean/std of bands it already has; a new Sentinel-2 band gets the
reflectance statistics of :data:`S2_REFLECTANCE_STATS` (inputs are surface or
top-of-atmosphere reflectance, e.g. digital numbers x 1e-4 as
:class:`senclip.data.transforms.ScaleReflectance` gives); any other name gets
mean 0.5, std 0.25.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from senclip.bands import parse_bands
from senclip.errors import SenclipError

RULES = ("zero", "mean", "nearest")

S2_WAVELENGTH_NM = {
    "B01": 443, "B02": 490, "B03": 560, "B04": 665, "B05": 705, "B06": 740, "B07": 783,
    "B08": 842, "B8A": 865, "B09": 945, "B10": 1375, "B11": 1610, "B12": 2190,
}
"""Central wavelengths (nm) of the Sentinel-2 MSI bands."""

S2_REFLECTANCE_STATS = {
    "B01": (0.135, 0.025), "B02": (0.112, 0.033), "B03": (0.104, 0.040), "B04": (0.095, 0.059),
    "B05": (0.120, 0.057), "B06": (0.200, 0.086), "B07": (0.237, 0.109), "B08": (0.230, 0.112),
    "B8A": (0.260, 0.123), "B09": (0.073, 0.040), "B10": (0.0012, 0.0005), "B11": (0.182, 0.100),
    "B12": (0.112, 0.076),
}
"""Approximate per-band (mean, std) of Sentinel-2 reflectance over European
land (rounded EuroSAT-MS statistics divided by 10,000). Used only to start
the normalisation of bands an RGB tower did not have."""

_OTHER_STATS = (0.5, 0.25)


def find_input_conv(module: nn.Module, in_channels: int) -> tuple[nn.Module, str, nn.Conv2d]:
    """The first ``Conv2d`` of ``module`` taking ``in_channels`` channels.

    Returns the parent module, the attribute name and the convolution.
    """
    for name, sub in module.named_modules():
        if isinstance(sub, nn.Conv2d) and sub.in_channels == in_channels:
            parent_name, _, attr = name.rpartition(".")
            parent = module.get_submodule(parent_name) if parent_name else module
            return parent, attr, sub
    raise SenclipError(
        f"no input convolution with {in_channels} channels in {type(module).__name__}; "
        "this trunk cannot be given other bands"
    )


def _new_filter(rule: str, band: str, old_bands: Sequence[str], weight: torch.Tensor) -> torch.Tensor:
    if rule == "zero":
        return torch.zeros_like(weight[:, 0])
    if rule == "nearest" and band in S2_WAVELENGTH_NM:
        known = [i for i, b in enumerate(old_bands) if b in S2_WAVELENGTH_NM]
        if known:
            nearest = min(known, key=lambda i: abs(S2_WAVELENGTH_NM[old_bands[i]] - S2_WAVELENGTH_NM[band]))
            return weight[:, nearest].clone()
    return weight.mean(dim=1)


def inflate_weight(weight: torch.Tensor, old_bands: Sequence[str], new_bands: Sequence[str],
                   rule: str = "zero") -> torch.Tensor:
    """First-layer weight ``(O, len(old), k, k)`` → ``(O, len(new), k, k)`` by ``rule``."""
    if rule not in RULES:
        raise SenclipError(f"unknown inflation rule {rule!r}; choose one of {', '.join(RULES)}")
    old = [b.upper() for b in old_bands]
    filters = []
    for band in new_bands:
        band = band.upper()
        if band in old:
            filters.append(weight[:, old.index(band)].clone())
        else:
            filters.append(_new_filter(rule, band, old, weight))
    out = torch.stack(filters, dim=1)
    if rule == "mean":
        out = out * (len(old) / len(new_bands))
    return out


def _band_stats(band: str, old_bands: Sequence[str], mean: torch.Tensor, std: torch.Tensor):
    if band in old_bands:
        i = list(old_bands).index(band)
        return float(mean[i]), float(std[i])
    return S2_REFLECTANCE_STATS.get(band, _OTHER_STATS)


def set_input_bands(tower: nn.Module, bands: Sequence[str] | str, rule: str = "zero") -> nn.Module:
    """Make a clip-visual :class:`~senclip.models.towers.ImageTower` take ``bands`` (in place).

    Args:
        tower: the image tower; its ``visual`` trunk, ``preprocess`` and
            ``bands`` are changed.
        bands: band names in input order (``"B01,…"``, ``"L1C"`` or a list).
        rule: how filters of new bands start: ``"zero"``, ``"mean"`` or
            ``"nearest"`` (see the module docstring).

    Returns:
        The same tower, for chaining.

    Raises:
        SenclipError: unknown rule, bad band list, or a trunk without an
            input convolution.
    """
    new_bands = parse_bands(bands)
    old_bands = tuple(b.upper() for b in tower.bands)
    if rule not in RULES:
        raise SenclipError(f"unknown inflation rule {rule!r}; choose one of {', '.join(RULES)}")
    if new_bands == old_bands:
        return tower
    parent, attr, conv = find_input_conv(tower.visual, len(old_bands))
    new_conv = nn.Conv2d(
        len(new_bands), conv.out_channels, conv.kernel_size, stride=conv.stride, padding=conv.padding,
        dilation=conv.dilation, groups=conv.groups, bias=conv.bias is not None,
        padding_mode=conv.padding_mode, device=conv.weight.device, dtype=conv.weight.dtype,
    )
    with torch.no_grad():
        new_conv.weight.copy_(inflate_weight(conv.weight.detach(), old_bands, new_bands, rule))
        if conv.bias is not None:
            new_conv.bias.copy_(conv.bias)
    new_conv.weight.requires_grad_(conv.weight.requires_grad)
    setattr(parent, attr, new_conv)

    pre = tower.preprocess
    mean = pre.mean.flatten().cpu()
    std = pre.std.flatten().cpu()
    stats = [_band_stats(b, old_bands, mean, std) for b in new_bands]
    device = pre.mean.device
    pre.mean = torch.tensor([s[0] for s in stats], dtype=torch.float32, device=device).view(1, -1, 1, 1)
    pre.std = torch.tensor([s[1] for s in stats], dtype=torch.float32, device=device).view(1, -1, 1, 1)
    tower.bands = new_bands
    return tower
