"""A tiny base CLIP whose zero-shot accuracy on EuroSAT is far above chance, fitted in seconds.

The trunks of a seeded random tiny CLIP stay as they are; its two final
projections (image ``visual.proj``, text ``text_projection``) are fitted on
proxy pairs: frozen-trunk features of a few EuroSAT ``train`` images per class
against the ground prompts of their classes, with the cross-entropy of the
zero-shot logits (Adam, full batch). A stand-in for a pretrained CLIP in tests
that need zero-shot predictions which mean something.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

ARCH = "senclip-tiny-vit"


def class_images(root: Path, per_class: int) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """The first ``per_class`` images of each class folder of a EuroSAT split: images, labels, classes."""
    from torch.utils.data import DataLoader, Subset

    from senclip.data import get_dataset
    from senclip.train.data import collate

    ds = get_dataset("eurosat", str(root))
    labels = torch.as_tensor(ds.labels)
    idx = [int(i) for c in range(len(ds.classes)) for i in torch.nonzero(labels == c).flatten()[:per_class]]
    images, ys = [], []
    for batch in DataLoader(Subset(ds, idx), batch_size=256, collate_fn=collate):
        images.append(batch["image"])
        ys.append(batch["label"])
    return torch.cat(images), torch.cat(ys), list(ds.classes)


@torch.no_grad()
def _image_features(model, images: torch.Tensor) -> torch.Tensor:
    """The ViT trunk's output before ``visual.proj``."""
    visual = model.image_tower.visual
    proj, visual.proj = visual.proj, None
    try:
        return visual(model.image_tower.preprocess(images)).float()
    finally:
        visual.proj = proj


@torch.no_grad()
def _text_features(model, texts: list[str]) -> torch.Tensor:
    """The text trunk's pooled output before ``text_projection``."""
    clip = model.text_tower.clip
    proj = clip.text_projection.detach().clone()
    width = proj.shape[0]
    try:
        clip.text_projection.copy_(torch.eye(width, proj.shape[1]))
        return model.text_tower.encode(texts, normalize=False)[:, :width].float()
    finally:
        clip.text_projection.copy_(proj)


def fit_base(train_root: Path, out: Path, per_class: int = 40, steps: int = 300, scale: float = 5.0,
             arch: str = ARCH, seed: int = 0) -> Path:
    """Write a ``full`` senclip file of ``arch`` with fitted projections to ``out``; returns it."""
    from senclip.models import create_model
    from senclip.models.checkpoint import save_model
    from senclip.prompts import load_prompts

    torch.manual_seed(seed)
    model = create_model(arch).eval()
    images, labels, classes = class_images(train_root, per_class)
    prompts = load_prompts("ground", classes, "eurosat")
    texts = [p for c in classes for p in prompts[c]]
    owner = torch.as_tensor([i for i, c in enumerate(classes) for _ in prompts[c]])
    mean_of_class = F.one_hot(owner, len(classes)).T.float()  # (C, P): sums a class's prompts
    img_f, txt_f = _image_features(model, images), _text_features(model, texts)
    w_img = model.image_tower.visual.proj.detach().clone().requires_grad_(True)
    w_txt = model.text_tower.clip.text_projection.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([w_img, w_txt], lr=1e-2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small matrices: one thread is fastest, and steady on a busy machine
    try:
        for _ in range(steps):
            cls = F.normalize(mean_of_class @ F.normalize(txt_f @ w_txt, dim=-1), dim=-1)
            loss = F.cross_entropy(scale * F.normalize(img_f @ w_img, dim=-1) @ cls.T, labels)
            opt.zero_grad()
            loss.backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    with torch.no_grad():
        model.image_tower.visual.proj.copy_(w_img)
        model.text_tower.clip.text_projection.copy_(w_txt)
    return save_model(model, out, kind="full", extra={"base": {"fitted": True, "seed": seed}})
