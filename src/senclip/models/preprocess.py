"""Preprocessing profiles: how an image tower resizes and normalises its input.

A profile sets what :class:`~senclip.models.towers.Preprocess` does before the
trunk: per-band mean and standard deviation, the resize interpolation, and two
steps of the SenCLIP reference's training input (per-image min-max stretch to
8 bit, centre crop). Built-in profiles:

``openai``
    OpenAI CLIP's statistics (mean 0.481, 0.458, 0.408; std 0.269, 0.261,
    0.276), bicubic resize: what OpenAI's own preprocessing does for a square
    image.
``senclip``
    the SenCLIP reference's evaluation input (``src/zeroshot.py`` of the
    authors' code): mean (0.347, 0.376, 0.296), std (0.269, 0.261, 0.276),
    bicubic resize to the tower's size. The published SenCLIP checkpoints
    were trained and evaluated with these statistics.
``senclip-train``
    the reference's *training* input (``src/dataset_sentinel.py``): per-image
    min-max stretch to 8 bit over all bands, centre crop of 32 x 32 pixels,
    bilinear resize, the ``senclip`` statistics (RandAugment is not part of
    it). Use it for training only; evaluate with ``senclip``.

A profile file (YAML or JSON) gives per-band statistics by band name, or lists
in the tower's band order, plus any of the settings::

    interpolation: bicubic        # bilinear (default) | bicubic | nearest
    antialias: true               # for bilinear/bicubic (default true)
    minmax: false                 # per-image min-max stretch to 8 bit
    center_crop: null             # crop N x N input pixels from the centre first
    bands:                        # mean, std per band (the tower's input units)
      B04: [0.347, 0.269]
      B03: {mean: 0.376, std: 0.261}
      B02: [0.296, 0.276]
    # or: mean: [...]  std: [...]  (one value per tower band, in its order)

Bands of the tower that a profile does not name keep their statistics; a
profile that names none of them is an error. Without a profile a tower keeps
the statistics of its weights and resizes bilinearly with antialiasing (the
behaviour of senclip before profiles). This module imports no torch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from senclip.errors import SenclipError

INTERPOLATIONS = ("bilinear", "bicubic", "nearest")
DEFAULT_SETTINGS = {"name": None, "interpolation": "bilinear", "antialias": True, "minmax": False,
                    "center_crop": None}

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
SENCLIP_MEAN = (0.347, 0.376, 0.296)  # reference: src/zeroshot.py, src/dataset_sentinel.py (R, G, B)
SENCLIP_STD = (0.269, 0.261, 0.276)
_RGB = ("B04", "B03", "B02")


def _rgb(mean, std) -> dict:
    return {b: (float(m), float(s)) for b, m, s in zip(_RGB, mean, std, strict=True)}


@dataclass(frozen=True)
class PreprocessConfig:
    """A preprocessing profile (see the module docstring).

    Attributes:
        name: profile name or file it came from (recorded in checkpoints and results).
        stats: ``{band: (mean, std)}`` by band name, or None.
        mean, std: statistics in the tower's band order (profile files only), or None.
        interpolation, antialias, minmax, center_crop: the settings.
    """

    name: str | None = None
    stats: dict = field(default_factory=dict)
    mean: tuple | None = None
    std: tuple | None = None
    interpolation: str = "bilinear"
    antialias: bool = True
    minmax: bool = False
    center_crop: int | None = None

    def settings(self) -> dict:
        """The non-tensor part, as stored in checkpoint headers."""
        return {"name": self.name, "interpolation": self.interpolation, "antialias": self.antialias,
                "minmax": self.minmax, "center_crop": self.center_crop}


PROFILES: dict[str, PreprocessConfig] = {
    "openai": PreprocessConfig("openai", _rgb(OPENAI_MEAN, OPENAI_STD), interpolation="bicubic"),
    "senclip": PreprocessConfig("senclip", _rgb(SENCLIP_MEAN, SENCLIP_STD), interpolation="bicubic"),
    "senclip-train": PreprocessConfig("senclip-train", _rgb(SENCLIP_MEAN, SENCLIP_STD),
                                      interpolation="bilinear", minmax=True, center_crop=32),
}


def check_settings(settings: dict, where: str) -> dict:
    """Validate the non-tensor settings (from a file, a header or a registry entry); returns them complete."""
    unknown = sorted(set(settings) - set(DEFAULT_SETTINGS))
    if unknown:
        known = ", ".join(k for k in DEFAULT_SETTINGS if k != "name")
        raise SenclipError(f"{where}: unknown preprocessing setting(s) {', '.join(unknown)}; "
                           f"known: {known}, bands, mean, std")
    out = DEFAULT_SETTINGS | {k: v for k, v in settings.items() if v is not None or k == "center_crop"}
    if out["interpolation"] not in INTERPOLATIONS:
        raise SenclipError(f"{where}: interpolation must be one of {', '.join(INTERPOLATIONS)}, "
                           f"not {out['interpolation']!r}")
    crop = out["center_crop"]
    if crop is not None and (isinstance(crop, bool) or not isinstance(crop, int) or crop < 1):
        raise SenclipError(f"{where}: center_crop must be a positive number of pixels or null, not {crop!r}")
    for key in ("antialias", "minmax"):
        if not isinstance(out[key], bool):
            raise SenclipError(f"{where}: {key} must be true or false, not {out[key]!r}")
    return out


def _pair(band: str, value, where: str) -> tuple[float, float]:
    if isinstance(value, dict):
        value = (value.get("mean"), value.get("std"))
    try:
        mean, std = (float(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise SenclipError(f"{where}: band {band} needs a mean and a std, e.g. {band}: [0.35, 0.27]") from exc
    if not std > 0:
        raise SenclipError(f"{where}: band {band} has std {std}; it must be positive")
    return mean, std


def from_mapping(data: dict, name: str, where: str | None = None,
                 positional_bands: tuple | None = None) -> PreprocessConfig:
    """A profile from a parsed file or a registry entry's ``preprocess`` mapping.

    ``positional_bands``: names for ``mean``/``std`` lists (a registry entry's
    lists are R, G, B: ``RGB_BANDS``); without it the lists follow the tower's order.
    """
    where = where or name
    if not isinstance(data, dict):
        raise SenclipError(f"{where}: a preprocessing profile must be a mapping")
    data = dict(data)
    base = data.pop("profile", None)
    for doc_only in ("image_size", "resize"):  # registry entries document these; the tower decides
        data.pop(doc_only, None)
    bands = data.pop("bands", None)
    mean, std = data.pop("mean", None), data.pop("std", None)
    settings = check_settings(data, where)
    cfg = resolve_profile(base) if base else PreprocessConfig()
    cfg = replace(cfg, name=name, **{k: v for k, v in settings.items() if k != "name" and k in data})
    if bands is not None:
        if not isinstance(bands, dict) or not bands:
            raise SenclipError(f"{where}: `bands` must map band names to [mean, std]")
        cfg = replace(cfg, stats={str(b).upper(): _pair(str(b).upper(), v, where) for b, v in bands.items()})
    if (mean is None) != (std is None):
        raise SenclipError(f"{where}: give both `mean` and `std`, or neither")
    if mean is not None:
        if not isinstance(mean, (list, tuple)) or not isinstance(std, (list, tuple)) or len(mean) != len(std):
            raise SenclipError(f"{where}: `mean` and `std` must be lists of the same length")
        pairs = [_pair(f"#{i + 1}", (m, s), where) for i, (m, s) in enumerate(zip(mean, std, strict=True))]
        if bands is None and positional_bands is not None and len(pairs) == len(positional_bands):
            cfg = replace(cfg, stats=dict(zip(positional_bands, pairs, strict=True)), mean=None, std=None)
        else:
            cfg = replace(cfg, mean=tuple(p[0] for p in pairs), std=tuple(p[1] for p in pairs))
    if not cfg.stats and cfg.mean is None and base is None:
        raise SenclipError(f"{where}: a profile needs statistics: `bands`, or `mean` and `std`")
    return cfg


def resolve_profile(spec: str | PreprocessConfig | None) -> PreprocessConfig | None:
    """``--preprocess`` / ``model.preprocess``: a built-in name, a YAML/JSON file, or None."""
    if spec is None or isinstance(spec, PreprocessConfig):
        return spec
    if spec in PROFILES:
        return PROFILES[spec]
    path = Path(spec).expanduser()
    if not path.is_file():
        raise SenclipError(f"unknown preprocessing profile {spec!r}: not one of {', '.join(PROFILES)} "
                           "and no such file")
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:  # unreadable or not YAML/JSON: one line
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SenclipError(f"cannot read preprocessing profile {path}: {msg}") from exc
    return from_mapping(data, name=str(path), where=str(path))


def apply_profile(tower, profile: str | PreprocessConfig | None) -> None:
    """Set ``tower.preprocess`` from a profile (in place): statistics by band name, then the settings.

    Raises:
        SenclipError: the tower has no image preprocessing, or the profile's
            statistics fit none of its bands / not its band count.
    """
    import torch

    from senclip.models.towers import Preprocess

    cfg = resolve_profile(profile)
    if cfg is None:
        return
    pre = getattr(tower, "preprocess", None)
    if not isinstance(pre, Preprocess):
        raise SenclipError(f"preprocessing profile {cfg.name}: applies to image towers only")
    bands = [str(b).upper() for b in tower.bands]
    mean = pre.mean.flatten().tolist()
    std = pre.std.flatten().tolist()
    if cfg.mean is not None:
        if len(cfg.mean) != len(bands):
            raise SenclipError(f"preprocessing profile {cfg.name} has {len(cfg.mean)} mean/std values, but "
                               f"the tower takes {len(bands)} bands ({','.join(bands)}); name the bands")
        mean, std = list(cfg.mean), list(cfg.std)
    elif cfg.stats:
        hits = [b for b in bands if b in cfg.stats]
        if not hits:
            raise SenclipError(f"preprocessing profile {cfg.name} has statistics for "
                               f"{','.join(cfg.stats)}, none of the tower's bands ({','.join(bands)})")
        for i, b in enumerate(bands):
            if b in cfg.stats:
                mean[i], std[i] = cfg.stats[b]
    device = pre.mean.device
    pre.mean = torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    pre.std = torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    pre.configure(**cfg.settings())
