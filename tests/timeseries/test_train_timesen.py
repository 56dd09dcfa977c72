"""The timesen tower trains with senclip.train (Lightning, InfoNCE) on proxy-paired pixels and exports."""

from __future__ import annotations

import torch
from torch.utils.data import Subset


def test_fit_a_few_steps_and_export(tmp_path, eopatch_root, tiny_vit):
    from senclip.models import create_model, read_metadata
    from senclip.timeseries.dataset import (
        PixelPairedDataset,
        TimeSeriesDataset,
        class_prompt_embeddings,
        lulc_prompts,
    )
    from senclip.train.config import load_config
    from senclip.train.data import PairedDataModule
    from senclip.train.export import export_checkpoint
    from senclip.train.run import fit

    pixels = TimeSeriesDataset(f"{eopatch_root}", split="train", classes="present")
    views = class_prompt_embeddings(tiny_vit, lulc_prompts("ground", pixels.classes))
    paired = PixelPairedDataset(pixels, views)
    sample = paired[0]
    assert sample["image"].shape == (12, 1) and sample["ground"].shape == (5, 128)
    assert sample["ground_mask"].all() and sample["point_id"] == pixels.paths[0]
    cfg = load_config("configs/timesen-ndvi-tiny.yaml", {
        "trainer.out": str(tmp_path / "run"), "trainer.max_steps": 3, "data.batch_size": 16,
        "optim.warmup_steps": 1, "trainer.ckpt_every_n_steps": 3,
        "model.tower_options": {"width": 16, "layers": 1, "heads": 2, "mlp_dim": 16, "month_dropout": 0.3,
                                "mean": [0.5], "std": [0.25]}})
    train = Subset(paired, list(range(0, len(paired), 97)))
    summary = fit(cfg, resume="none", progress=False,
                  datamodule=PairedDataModule(cfg, train_dataset=train, val_dataset=None))
    assert summary["global_step"] == 3
    tower = summary["module"].image_tower
    assert tower.tower_kind == "timesen" and tower.config.month_dropout == 0.3
    out = tmp_path / "ts.safetensors"
    export_checkpoint(summary["last_checkpoint"], out, kind="image")
    assert read_metadata(out)["tower"] == "timesen"
    model = create_model("senclip-tiny-vit", checkpoint=out)
    x = torch.from_numpy(pixels.series[:8])
    with torch.no_grad():
        torch.testing.assert_close(model.encode_image(x), tower.eval()(x))
