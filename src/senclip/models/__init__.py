"""Models: factory, towers, the tower registry (:mod:`~senclip.models.kinds`), heads, checkpoints.

Names load on first use (PEP 562), so the registry, read by the training config, needs no torch.
"""

import importlib

_HOMES = {"load_model": "factory", "create_model": "factory", "list_architectures": "factory",
          "read_metadata": "checkpoint", "save_model": "checkpoint", "SenCLIP": "model",
          "HeadConfig": "head", "ProjectionHead": "head", "ProjectingHead": "head",
          "ResidualHead": "head", "RGB_BANDS": "towers", "ImageTower": "towers",
          "Preprocess": "towers", "TextTower": "towers", "PreprocessConfig": "preprocess",
          "convert_file": "factory", "export_open_clip": "convert"}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module 'senclip.models' has no attribute {name!r}")
    return getattr(importlib.import_module(f"senclip.models.{_HOMES[name]}"), name)
