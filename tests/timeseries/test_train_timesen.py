"""The eo-learn pipeline check through the CLI alone: proxy-pairs --series → train → export → zeroshot."""

from __future__ import annotations

import json

import pandas as pd
import torch

from senclip.cli import main


def test_proxy_series_pipeline_from_commands(tmp_path, eopatch_root, capsys):
    from senclip.models import create_model, read_metadata
    from senclip.data.series.dataset import TimeSeriesDataset

    base, proxy = tmp_path / "base.safetensors", tmp_path / "proxy"
    assert main(["export", "--base", "senclip-tiny-vit", "--seed", "0", "--out", str(base)]) == 0
    assert main(["proxy-pairs", "--series", f"{eopatch_root}:train", "--model", "senclip-tiny-vit",
                 "--pretrained", str(base), "--out", str(proxy), "--no-progress"]) == 0
    manifest = pd.read_csv(proxy / "manifest.csv")
    pixels = TimeSeriesDataset(f"{eopatch_root}:train")
    assert manifest["point_id"].tolist() == pixels.paths and (manifest["col"] < 50).all()  # left half only
    assert manifest["label"].tolist() == pixels.labels.tolist()
    assert manifest["lat"].between(45, 47).all() and manifest["lon"].between(14, 15).all()  # Slovenia

    small = proxy / "small.csv"  # every 97th pixel keeps the run short
    manifest.iloc[::97].to_csv(small, index=False)
    out = tmp_path / "run"
    assert main(["train", "--config", "configs/timesen-ndvi-tiny.yaml", "--model.pretrained", str(base),
                 "--data.manifest", str(small), "--data.cache", str(proxy / "ground_cache"),
                 "--data.batch_size", "16", "--data.val_fraction", "0.1", "--trainer.out", str(out),
                 "--eval.zeroshot_dataset", "timeseries", "--eval.zeroshot_root", f"{eopatch_root}:valid",
                 "--eval.zeroshot_max", "300",
                 "--trainer.max_steps", "3", "--trainer.ckpt_every_n_steps", "3", "--optim.warmup_steps", "1",
                 "--model.tower_options", '{"width": 16, "layers": 1, "heads": 2, "mlp_dim": 16, '
                 '"month_dropout": 0.3, "mean": [0.5], "std": [0.25]}', "--no-progress"]) == 0
    metrics = pd.read_csv(out / "logs/version_0/metrics.csv")
    assert metrics["val/zeroshot_top1"].dropna().between(0, 1).all() and metrics["val/s2g_R@1"].notna().any()
    model_file = tmp_path / "ts.safetensors"
    assert main(["export", "--checkpoint", str(out / "checkpoints/last.ckpt"), "--out", str(model_file)]) == 0
    assert read_metadata(model_file)["tower"] == "timesen"
    zs = tmp_path / "zs.json"
    assert main(["zeroshot", "--model", "senclip-tiny-vit", "--pretrained", str(model_file), "--dataset",
                 "timeseries", "--data", f"{eopatch_root}:valid", "--prompts", "ground", "--out", str(zs),
                 "--no-cache", "--workers", "0", "--no-progress"]) == 0
    res = json.loads(zs.read_text())
    assert res["n"] == len(TimeSeriesDataset(f"{eopatch_root}:valid")) and 0 <= res["top1"] <= 1
    # the exported tower is the trained one: same embeddings as the Lightning module's tower
    ckpt = torch.load(out / "checkpoints/last.ckpt", map_location="cpu", weights_only=True)
    module_state = ckpt["state_dict"]
    model = create_model("senclip-tiny-vit", pretrained=str(model_file)).eval()
    tower_state = {f"image_tower.{k}": v for k, v in model.image_tower.state_dict().items()}
    for key, value in tower_state.items():
        torch.testing.assert_close(module_state[key], value, msg=key)
