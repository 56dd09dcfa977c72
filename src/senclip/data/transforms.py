"""Sample transforms: dict in, dict out; every constant is an argument.

Datasets return pixels as stored (8-bit values for JPEG/PNG, digital numbers
for Sentinel-2 GeoTIFFs) in a float32 ``(C, H, W)`` tensor under ``"image"``.
These transforms turn them into what a model tower expects. Per-band
normalisation with the weights' mean/std happens inside the model
(:class:`senclip.models.Preprocess`), because it belongs to the weights.

Sentinel-2 conventions:

* L1C and L2A digital numbers are reflectance × 10,000
  (``ScaleReflectance(scale=1e-4)``). Products of processing baseline 04.00
  and later (from 25 January 2022) add 1,000 to every L2A value: use
  ``offset=-0.1`` for them.
* An RGB CLIP trained on photos expects display-like values in [0, 1].
  :func:`true_colour` applies the usual true-colour stretch: reflectance
  ×3.5 (i.e. 0.0–0.286 reflectance maps to 0–1), clipped. EuroSAT's RGB
  JPEGs were made with a similar stretch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from senclip.bands import RGB_BANDS

Sample = dict
Transform = Callable[[Sample], Sample]


class Compose:
    """Apply transforms in order."""

    def __init__(self, transforms: Sequence[Transform]) -> None:
        self.transforms = list(transforms)

    def __call__(self, sample: Sample) -> Sample:
        for t in self.transforms:
            sample = t(sample)
        return sample

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"


class ToFloat:
    """Scale integer pixel values to [0, 1]: ``image * scale`` (default 1/255)."""

    def __init__(self, scale: float = 1 / 255) -> None:
        self.scale = scale

    def __call__(self, sample: Sample) -> Sample:
        return sample | {"image": sample["image"].float() * self.scale}

    def __repr__(self) -> str:
        return f"ToFloat(scale={self.scale:g})"


class ScaleReflectance:
    """Digital numbers to reflectance: ``image * scale + offset``, optionally clipped."""

    def __init__(self, scale: float = 1e-4, offset: float = 0.0,
                 clip: tuple[float, float] | None = None) -> None:
        self.scale, self.offset, self.clip = scale, offset, clip

    def __call__(self, sample: Sample) -> Sample:
        x = sample["image"].float() * self.scale + self.offset
        if self.clip is not None:
            x = x.clamp(*self.clip)
        return sample | {"image": x}

    def __repr__(self) -> str:
        return f"ScaleReflectance(scale={self.scale:g}, offset={self.offset:g}, clip={self.clip})"


class SelectBands:
    """Keep the named bands, in the order given (e.g. ``B04,B03,B02`` for RGB).

    The sample's ``"bands"`` entry (or ``source_bands``) names its channels;
    the output's ``"bands"`` names the kept ones. ``axis`` is where the bands
    are: 0 for ``(C, H, W)`` chips, -1 for ``(12, C)`` month series.
    """

    def __init__(self, bands: Sequence[str], source_bands: Sequence[str] | None = None,
                 axis: int = 0) -> None:
        self.bands = tuple(bands)
        self.source_bands = tuple(source_bands) if source_bands is not None else None
        self.axis = axis

    def __call__(self, sample: Sample) -> Sample:
        source = tuple(sample.get("bands") or self.source_bands or ())
        missing = [b for b in self.bands if b not in source]
        if missing:
            raise KeyError(f"bands {missing} not in sample bands {list(source)}")
        idx = [source.index(b) for b in self.bands]
        image = sample["image"][idx] if self.axis == 0 else sample["image"][..., idx]
        return sample | {"image": image, "bands": self.bands}

    def __repr__(self) -> str:
        return f"SelectBands({list(self.bands)})"


class Normalize:
    """Per-band ``(x - mean) / std`` for models that do not normalise themselves."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)

    def __call__(self, sample: Sample) -> Sample:
        return sample | {"image": (sample["image"].float() - self.mean) / self.std}


TRUE_COLOUR_GAIN = 3.5  # reflectance-to-display stretch: RGB towers were trained on photo-like images


def true_colour(offset: float = 0.0, gain: float = TRUE_COLOUR_GAIN,
                bands: Sequence[str] = RGB_BANDS) -> Compose:
    """RGB (B04, B03, B02) display values in [0, 1] from Sentinel-2 digital numbers.

    ``bands`` are the three bands put in the red, green and blue channels, in that
    order; anything but the default (e.g. the SenCLIP reference's BigEarthNet order,
    :data:`senclip.bands.REFERENCE_BGR_BANDS`) is for reproduction only.
    """
    return Compose([
        SelectBands(bands),
        ScaleReflectance(scale=1e-4 * gain, offset=offset * gain, clip=(0.0, 1.0)),
    ])
