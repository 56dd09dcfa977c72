"""Reading pickled checkpoints without running code from them.

``torch.load(weights_only=True)`` rebuilds tensors and containers only, so a file that would
execute code on loading is refused instead. Third-party checkpoints senclip reads (OpenAI-layout
CLIP state dicts, TimeSenCLIP encoders and Lightning checkpoints) go through :func:`load_pickle`.
"""

from __future__ import annotations

import argparse
import pickle
import warnings
from pathlib import Path

from senclip.errors import SenclipError

SAFE_CLASSES = (argparse.Namespace,)
"""Classes a pickled checkpoint may hold besides tensors and containers: Lightning stores a training
run's command-line arguments as ``hyper_parameters`` (the TimeSenCLIP reference's ``save_hyperparameters()``
of an ``argparse.Namespace``); rebuilding one sets plain attributes and runs no code of the file."""


def load_pickle(path: Path):
    """``torch.load(weights_only=True)``: tensors, containers and :data:`SAFE_CLASSES` only; any failure
    is one line."""
    import torch

    try:
        with warnings.catch_warnings(), torch.serialization.safe_globals(list(SAFE_CLASSES)):
            # torch notes pickle protocols it does not expect; the error says it
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise SenclipError(f"refused to load {path}: it holds objects other than plain tensors (code or "
                           "classes), and checkpoints are loaded without executing code "
                           "(torch.load weights_only=True)") from exc
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, AttributeError, TypeError,
            IndexError) as exc:
        text = str(exc).strip()
        first = (text.splitlines()[0] if text else type(exc).__name__)[:300]
        raise SenclipError(f"{path} is not a readable checkpoint (truncated or corrupt? {first})") from exc


__all__ = ["SAFE_CLASSES", "load_pickle"]
