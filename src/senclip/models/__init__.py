"""Models: the open_clip factory, image/text towers, heads and checkpoints."""

from senclip.models.checkpoint import load_model, read_metadata, save_model
from senclip.models.factory import SenCLIP, create_model, list_architectures
from senclip.models.head import HeadConfig, ProjectionHead
from senclip.models.towers import RGB_BANDS, ImageTower, Preprocess, TextTower

__all__ = [
    "RGB_BANDS", "HeadConfig", "ImageTower", "Preprocess", "ProjectionHead", "SenCLIP",
    "TextTower", "create_model", "list_architectures", "load_model", "read_metadata", "save_model",
]
