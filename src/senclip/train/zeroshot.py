"""Zero-shot accuracy on a labelled dataset, for periodic validation during training.

The classifier is built once from the frozen text tower and the prompt spec
(``eval.zeroshot_prompts``); each validation embeds a fixed, seeded subset of
``eval.zeroshot_max`` images with the current satellite tower.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Subset

from senclip.train.data import collate


class ZeroShotProbe:
    """Top-1 zero-shot accuracy of a tower on ``cfg.eval``'s dataset.

    Args:
        cfg: :class:`senclip.train.config.TrainConfig`.
        base_model: the frozen base :class:`~senclip.models.SenCLIP` (text tower).
    """

    def __init__(self, cfg, base_model) -> None:
        from senclip.data import get_dataset
        from senclip.errors import SenclipError
        from senclip.prompts import load_prompts, text_classifier

        e = cfg.eval
        name = e.zeroshot_dataset or "eurosat"
        ds = get_dataset(name, e.zeroshot_root, bands=tuple(cfg.model.bands))
        if ds.multilabel:
            raise SenclipError(f"zero-shot validation needs a single-label dataset; {name} is multi-label")
        self.classifier = text_classifier(base_model, load_prompts(e.zeroshot_prompts, ds.classes, ds.name))
        if e.zeroshot_max and len(ds) > e.zeroshot_max:
            gen = torch.Generator().manual_seed(cfg.trainer.seed)
            ds = Subset(ds, sorted(torch.randperm(len(ds), generator=gen)[: e.zeroshot_max].tolist()))
        self.dataset = ds
        self.batch_size = cfg.data.batch_size

    @torch.no_grad()
    def top1(self, tower: torch.nn.Module, device: torch.device) -> float:
        was_training = tower.training
        tower.eval()
        correct = total = 0
        cls = self.classifier.to(device)
        for batch in DataLoader(self.dataset, batch_size=max(self.batch_size, 64), collate_fn=collate):
            emb = tower(batch["image"].to(device), normalize=True).float()
            pred = (emb @ cls.T).argmax(1).cpu()
            correct += int((pred == batch["label"]).sum())
            total += len(pred)
        tower.train(was_training)
        return correct / max(total, 1)
