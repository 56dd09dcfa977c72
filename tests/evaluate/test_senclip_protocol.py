"""`zeroshot --protocol senclip`: the SenCLIP reference scripts' protocol, kept apart from ours."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from senclip.cli import main
from senclip.evaluate.senclip_protocol import column_mean_division, reference_subset, top_label_share
from senclip.prompts.reference import CLASS_NAMES

# ---- the arithmetic, against hand computations ------------------------------------------------


def test_column_mean_division_by_hand():
    logits = np.array([[0.30, 0.25], [0.20, 0.10], [0.28, 0.12]])
    # column means 0.26 and 0.46/3; row 0: 0.30/0.26 = 1.154 < 0.25/0.1533 = 1.630
    divided = column_mean_division(logits)
    assert divided == pytest.approx(np.array([[0.30 / 0.26, 0.25 / (0.47 / 3)],
                                              [0.20 / 0.26, 0.10 / (0.47 / 3)],
                                              [0.28 / 0.26, 0.12 / (0.47 / 3)]]), rel=1e-4)
    assert list(divided.argmax(1)) == [1, 0, 0]
    assert list(logits.argmax(1)) == [0, 0, 0]
    # centring on the mean (our --calibrate) ranks row 1 differently: 0.20-0.26 < 0.10-0.1567
    centred = logits - logits.mean(0)
    assert list(centred.argmax(1)) == [1, 1, 0]
    assert column_mean_division(np.array([[1.0, 2.0], [3.0, 6.0]])) == pytest.approx(
        np.array([[0.5, 0.5], [1.5, 1.5]]), rel=1e-5)


def test_top_label_share_by_hand():
    scores = np.array([[0.9, 0.1, 0.5, 0.3], [0.2, 0.8, 0.7, 0.1], [0.1, 0.2, 0.3, 0.4],
                       [0.4, 0.3, 0.2, 0.1]])
    targets = np.array([[1, 0, 0, 1], [0, 1, 1, 0], [0, 0, 0, 0], [0, 0, 0, 1]])
    # row 0: top-2 {0, 2} holds 1 of {0, 3}; row 1: top-2 {1, 2} holds both; row 2: no label;
    # row 3: top-1 {0} misses {3}  ->  3 of 5 true labels
    assert top_label_share(scores, targets) == pytest.approx(3 / 5)
    assert np.isnan(top_label_share(scores, np.zeros_like(targets)))


def test_reference_subset_is_random_split_after_seed_42():
    with torch.random.fork_rng():
        torch.manual_seed(42)
        first, _ = torch.utils.data.random_split(range(30_000), [27_000, 3_000])
    assert list(reference_subset(30_000, rule="random-split")) == list(first.indices)
    # as the reference ran it: DataLoader(batch_size=32, drop_last=True) over the 27,000 evaluates 26,976
    loader = torch.utils.data.DataLoader(first, batch_size=32, shuffle=True, drop_last=True)
    assert sum(len(b) for b in loader) == 26_976
    assert list(reference_subset(30_000)) == list(first.indices)[:26_976]
    assert list(reference_subset(6)) == list(range(6))


# ---- prompts in the reference schema -------------------------------------------------------------


def reference_json(path, classes, dataset="eurosat"):
    """A prompt file in the reference schema: display name -> sentences."""
    names = CLASS_NAMES.get(dataset, {})
    doc = {names.get(c, c): [f"a ground photo of {names.get(c, c).lower()}.", f"{c} seen from a path."]
           for c in classes}
    path.write_text(json.dumps(doc))
    return path


def test_reference_json_maps_display_names_to_keys(tmp_path, classes):
    from senclip.errors import SenclipError
    from senclip.prompts import load_prompts

    f = reference_json(tmp_path / "ref.json", classes)
    prompts = load_prompts(str(f), classes, "eurosat")
    assert list(prompts) == classes
    assert prompts["SeaLake"] == ["a ground photo of sea or lake.", "SeaLake seen from a path."]
    bad = json.loads(f.read_text()) | {"Sea or Lak": ["x"]}
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(SenclipError, match="did you mean"):
        load_prompts(str(tmp_path / "bad.json"), classes, "eurosat")
    with pytest.raises(SenclipError, match="sentences"):
        load_prompts(f"{f}:ground", classes, "eurosat")


# ---- the CLI on real data ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def weights(tmp_path_factory, tiny_vit):
    from senclip.models import save_model

    return str(save_model(tiny_vit, tmp_path_factory.mktemp("w") / "tiny.safetensors", kind="full"))


def _zs(weights, dataset, data, out, prompts, *extra):
    return ["zeroshot", "--model", "senclip-tiny-vit", "--pretrained", weights, "--dataset", dataset,
            "--data", str(data), "--prompts", prompts, "--out", str(out), "--workers", "0", "--no-progress",
            *extra]


def test_eurosat_protocol_apart_and_inductive_unchanged(weights, eurosat_rgb, tmp_path, make_tree, classes,
                                                        capsys):
    from senclip.data import get_dataset
    from senclip.evaluate.zeroshot import evaluate_zeroshot
    from senclip.models import create_model

    tree = make_tree(eurosat_rgb / "valid", tmp_path / "es", per_class=3)
    ref = str(reference_json(tmp_path / "ref.json", classes))
    prompts = f"{ref},generic"
    assert main(_zs(weights, "eurosat", tree, tmp_path / "a.json", prompts)) == 0
    assert main(_zs(weights, "eurosat", tree, tmp_path / "b.json", prompts, "--protocol", "senclip")) == 0
    a, b = (json.loads((tmp_path / n).read_text()) for n in ("a.json", "b.json"))
    assert "senclip_protocol" not in a
    ref_block = b.pop("senclip_protocol")
    a.pop("runtime"), b.pop("runtime")  # timings
    assert a == b  # the inductive results do not change with the flag
    assert ref_block["transductive"] is True and ref_block["class_names"]["SeaLake"] == "Sea or Lake"
    assert set(ref_block["runs"]) == {ref, "generic"}
    md = (tmp_path / "b.md").read_text()
    assert "SenCLIP reference protocol (transductive" in md and md.count("| generic |") == 3
    # the protocol's top-1 is the accuracy of argmax(cosine / column mean), computed here by hand
    model = create_model("senclip-tiny-vit", pretrained=weights)
    model.set_precision("auto")  # as the CLI's default --precision auto
    ds = get_dataset("eurosat", tree)
    r = evaluate_zeroshot(model, ds, [ref], workers=0, progress=False, return_logits=True)
    cosine = r["_logits"][ref] / r["logit_scale"]
    pred = (cosine / (cosine.mean(0) + 1e-6)).argmax(1)
    assert ref_block["runs"][ref]["top1"] == pytest.approx(float(np.mean(pred == np.asarray(ds.labels))))
    # generic templates are filled with the reference's display names under the protocol
    fingerprint = ref_block["runs"]["generic"]["prompts"]["fingerprint"]
    assert fingerprint != a["runs"]["generic"]["prompts"]["fingerprint"]


def test_bigearthnet_top_label_share_on_all_six_patches(weights, bigearthnet_root, tmp_path, capsys):
    from senclip.data import get_dataset
    from senclip.evaluate.zeroshot import evaluate_zeroshot
    from senclip.models import create_model

    assert main(_zs(weights, "bigearthnet", bigearthnet_root, tmp_path / "ben.json", "ground",
                    "--protocol", "senclip")) == 0
    r = json.loads((tmp_path / "ben.json").read_text())
    block = r["senclip_protocol"]["runs"]["ground"]
    assert block["n_subset"] == 6 and r["senclip_protocol"]["subset"]["of"] == 6
    ds = get_dataset("bigearthnet", bigearthnet_root)
    model = create_model("senclip-tiny-vit", pretrained=weights)
    model.set_precision("auto")  # as the CLI's default --precision auto
    lib = evaluate_zeroshot(model, ds, ["ground"], workers=0, progress=False, return_logits=True)
    scores, y = lib["_logits"]["ground"], np.asarray(ds.labels).astype(bool)
    hits = sum(int(y[i][np.argsort(-scores[i], kind="stable")[:y[i].sum()]].sum()) for i in range(6))
    assert block["top_label_share"] == pytest.approx(hits / y.sum())
    assert block["n_labels"] == int(y.sum())
    assert r["map_macro"] == pytest.approx(lib["map_macro"])  # inductive numbers on all 6, as before
    assert "top-\\|y\\| share" in (tmp_path / "ben.md").read_text()  # escaped in the table


def test_bigearthnet_reference_bgr_is_recorded_and_cached_apart(weights, bigearthnet_root, eurosat_rgb,
                                                                 tmp_path, capsys):
    from senclip.data import get_dataset
    from senclip.data.bigearthnet import rgb_transforms
    from senclip.evaluate.embeddings import cache_key
    from senclip.models import create_model

    cache = ["--cache-dir", str(tmp_path / "cache")]
    assert main(_zs(weights, "bigearthnet", bigearthnet_root, tmp_path / "rgb.json", "ground", *cache)) == 0
    assert main(_zs(weights, "bigearthnet", bigearthnet_root, tmp_path / "bgr.json", "ground", *cache,
                    "--bigearthnet-rgb", "reference-bgr", "--protocol", "senclip")) == 0
    rgb, bgr = (json.loads((tmp_path / n).read_text()) for n in ("rgb.json", "bgr.json"))
    assert rgb["bigearthnet_rgb"] == {"order": "rgb", "bands": ["B04", "B03", "B02"]}
    assert bgr["bigearthnet_rgb"]["order"] == "reference-bgr"
    assert bgr["bigearthnet_rgb"]["bands"] == ["B02", "B03", "B04"]
    assert "reproduction only" in bgr["bigearthnet_rgb"]["note"]
    assert "B02, B03, B04 (--bigearthnet-rgb reference-bgr)" in (tmp_path / "bgr.md").read_text()
    # the two orders are two inputs: distinct embedding-cache entries, so the second run re-encoded
    model = create_model("senclip-tiny-vit", pretrained=weights)
    model.set_precision("auto")  # as the CLI's default --precision auto
    default = get_dataset("bigearthnet", bigearthnet_root)
    swapped = get_dataset("bigearthnet", bigearthnet_root, transforms=rgb_transforms("reference-bgr"))
    assert cache_key(model, default) != cache_key(model, swapped)
    assert {p.stem for p in (tmp_path / "cache").glob("*.npy")} == {cache_key(model, default),
                                                                    cache_key(model, swapped)}
    # reproduction-only: refused where it means nothing, one line, nothing written
    capsys.readouterr()
    assert main(_zs(weights, "eurosat", eurosat_rgb / "valid", tmp_path / "es.json", "generic",
                    "--bigearthnet-rgb", "reference-bgr")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "applies only to --dataset bigearthnet" in err
    assert not (tmp_path / "es.json").exists()


def test_bigearthnet_as_the_reference_ran_it(weights, bigearthnet_root, tmp_path, capsys):
    """torchgeo's split file in its order, the reference's min-max stretch, recorded in the results."""
    import rasterio

    from senclip.data import get_dataset
    from senclip.data.bigearthnet import rgb_transforms

    names = sorted(p.name for p in bigearthnet_root.iterdir() if p.is_dir())
    order = [names[i] for i in (4, 1, 5, 0)]
    split = tmp_path / "bigearthnet-test.csv"  # torchgeo's format: S2 patch, S1 patch, no header
    split.write_text("".join(f"{n},S1A_IW_GRDH_1SDV_{i}\n" for i, n in enumerate(order)))
    ds = get_dataset("bigearthnet", bigearthnet_root, split_file=split,
                     transforms=rgb_transforms("reference-bgr", "reference-minmax"))
    assert [p.split("/")[-1] for p in ds.paths] == order
    image = ds[0]["image"].numpy()
    bands = []
    for b in ("B02", "B03", "B04"):  # 10 m bands: read as they are, like torchgeo's out_shape (120, 120)
        with rasterio.open(bigearthnet_root / order[0] / f"{order[0]}_{b}.tif") as src:
            bands.append(src.read(1).astype(np.float64))
    raw = np.stack(bands)
    # cv2.normalize(..., 0, 255, NORM_MINMAX) over the whole array, then np.uint8, then ToTensor
    want = np.floor((raw - raw.min()) * 255.0 / (raw.max() - raw.min())) / 255.0
    np.testing.assert_allclose(image, want, atol=1e-6)
    assert image.min() == 0.0 and image.max() == 1.0 and len(np.unique(image)) > 50
    # at the tower's size, in the reference's order: 8 bit, PIL RGB image, Resize((224, 224), BICUBIC) on
    # it (PIL's resampling, 8 bit again), ToTensor
    from PIL import Image

    eight_bit = np.uint8(np.floor((raw - raw.min()) * 255.0 / (raw.max() - raw.min()))).transpose(1, 2, 0)
    pil = Image.fromarray(eight_bit).resize((224, 224), Image.Resampling.BICUBIC)
    reference = np.asarray(pil).transpose(2, 0, 1) / 255.0
    sized = get_dataset("bigearthnet", bigearthnet_root, split_file=split,
                        transforms=rgb_transforms("reference-bgr", "reference-minmax", 224))[0]["image"]
    np.testing.assert_allclose(sized.numpy(), reference, atol=1e-6)
    # resizing the floats instead (the tower's antialiased bicubic) is another input: steps apart
    floats = torch.nn.functional.interpolate(torch.from_numpy(want)[None].float(), size=(224, 224),
                                             mode="bicubic", antialias=True, align_corners=False)[0]
    assert (floats - sized).abs().max() > 1.0 / 255
    out = tmp_path / "ben.json"
    assert main(_zs(weights, "bigearthnet", bigearthnet_root, out, "ground", "--protocol", "senclip",
                    "--bigearthnet-rgb", "reference-bgr", "--bigearthnet-stretch", "reference-minmax",
                    "--bigearthnet-split", str(split), "--bigearthnet-subset", "random-split")) == 0
    r = json.loads(out.read_text())
    assert r["n"] == 4 and r["bigearthnet_split"]["patches"] == 4
    assert r["bigearthnet_rgb"]["stretch"] == "reference-minmax"
    assert r["senclip_protocol"]["subset"]["rule"] == "random-split"
    assert "stretch reference-minmax" in out.with_suffix(".md").read_text()
    assert main(_zs(weights, "eurosat", bigearthnet_root, tmp_path / "x.json", "ground",
                    "--bigearthnet-subset", "random-split")) == 2
    assert "--bigearthnet-subset applies to --dataset bigearthnet" in capsys.readouterr().err
