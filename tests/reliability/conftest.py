"""Fixtures of the reliability battery: one small real input per command, built once per session."""

from __future__ import annotations

import pytest
from reliability_helpers import PER_CLASS, Inputs, write_scene


@pytest.fixture(scope="session")
def inputs(tmp_path_factory, eurosat_rgb, eopatch_root) -> Inputs:
    import torch

    from senclip.cli import main
    from senclip.data.series.io import EOPatchSource
    from senclip.data.series.rasters import write_stack
    from senclip.models import create_model, save_model
    from senclip.models.timesen import TimeSenConfig, build_timesen_model

    root = tmp_path_factory.mktemp("reliability")
    torch.manual_seed(0)
    base = create_model("senclip-tiny-vit")
    model = save_model(base, root / "tiny-vit.safetensors", kind="full")
    scene = write_scene(root / "scene.tif", eurosat_rgb)
    tiles = root / "tiles.parquet"
    assert main(["embed", str(scene), "--out", str(tiles), "--model", "senclip-tiny-vit", "--pretrained",
                 str(model), "--no-progress", "--workers", "1"]) == 0

    src = EOPatchSource(eopatch_root)
    data, valid = src.read(slice(0, 16))
    transform = src.transform
    stack = write_stack(root / "stack.tif", data, src.dates, src.bands, valid, src.crs, transform)
    cfg = TimeSenConfig(bands=("NDVI",), embed_dim=128, width=32, layers=2, heads=4, mlp_dim=64,
                        dropout=0.0, mean=(0.5,), std=(0.25,))
    torch.manual_seed(3)
    timesen = save_model(build_timesen_model(base, cfg), root / "timesen.safetensors")

    tree = root / "eurosat"
    for class_dir in sorted((eurosat_rgb / "train").iterdir()):
        (tree / class_dir.name).mkdir(parents=True)
        for img in sorted(class_dir.glob("*.jpg"))[:PER_CLASS]:
            (tree / class_dir.name / img.name).symlink_to(img)
    assert main(["proxy-pairs", "--eurosat", str(tree), "--model", "senclip-tiny-vit", "--pretrained",
                 str(model), "--out", str(root / "proxy"), "--no-progress"]) == 0
    manifest, cache = root / "proxy" / "manifest.csv", root / "proxy" / "ground_cache"
    config = root / "train.yaml"
    config.write_text(
        f"model: {{name: senclip-tiny-vit, pretrained: {model}}}\n"
        f"data: {{manifest: {manifest}, cache: {cache}, batch_size: 4, workers: 0, val_fraction: 0.2}}\n"
        "trainer: {max_steps: 2, ckpt_every_n_steps: 1, log_every_n_steps: 1}\n")
    points = root / "points.csv"
    points.write_text("point_id,lat,lon,date\np1,48.1,11.5,2022-06-01\n")
    area = root / "area.geojson"
    area.write_text('{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {}, '
                    '"geometry": {"type": "Polygon", "coordinates": [[[11.5, 48.1], [11.51, 48.1], '
                    '[11.51, 48.11], [11.5, 48.1]]]}}]}')
    return Inputs(model, scene, tiles, stack, timesen, tree, manifest, cache, config, points, area)


