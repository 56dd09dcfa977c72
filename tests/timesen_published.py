"""The published TimeSenCLIP encoder written from the published facts alone, for tests.

Nothing here comes from senclip's modules: the key names and shapes are data (read off
``src/models/encoder.py`` of ``pallavijain-pj/TimeSenCLIP``), the checkpoints are built from that
table with random tensors in each layout the reference wrote or loads, and the newest published
``inference()`` (commit a48994f) and the input rules of its loaders are transcribed with plain torch
operations, with their own constants.
"""

from __future__ import annotations

import argparse
import math

import torch
import torch.nn.functional as F

# ---- the published facts -------------------------------------------------------------------------

# name -> shape; D width, F feed-forward, P = bands x H x W, T time frames, {i} each layer, {token}
# the class token (`class_token` up to 8d19b88, `time_token` from 8dfc8e6 on)
ENCODER_TABLE = [
    ("spectral_embedding.1.weight", ("D", "P")),
    ("spectral_embedding.1.bias", ("D",)),
    ("time_pos_encoding", (1, "T", "D")),
    ("{token}", (1, 1, "D")),
    ("transformer.layers.{i}.self_attn.in_proj_weight", ("3D", "D")),
    ("transformer.layers.{i}.self_attn.in_proj_bias", ("3D",)),
    ("transformer.layers.{i}.self_attn.out_proj.weight", ("D", "D")),
    ("transformer.layers.{i}.self_attn.out_proj.bias", ("D",)),
    ("transformer.layers.{i}.linear1.weight", ("F", "D")),
    ("transformer.layers.{i}.linear1.bias", ("F",)),
    ("transformer.layers.{i}.linear2.weight", ("D", "F")),
    ("transformer.layers.{i}.linear2.bias", ("D",)),
    ("transformer.layers.{i}.norm1.weight", ("D",)),
    ("transformer.layers.{i}.norm1.bias", ("D",)),
    ("transformer.layers.{i}.norm2.weight", ("D",)),
    ("transformer.layers.{i}.norm2.bias", ("D",)),
    ("mlp_head.0.weight", ("D",)),
    ("mlp_head.0.bias", ("D",)),
    ("mlp_head.1.weight", ("D", "D")),
    ("mlp_head.1.bias", ("D",)),
]
# README / zeroshot.py: TimeSenCLIPEncoder(image_size=1, time_frames=12, dim=512, depth=6, heads=8,
# mlp_dim=256, spectral_bands=10)
PUBLISHED_DIMS = {"D": 512, "F": 256, "P": 10, "T": 12, "L": 6, "heads": 8}
PUBLISHED_PARAMETERS = 8_169_472

# (container, prefix, token) of every layout: the file itself or a Lightning checkpoint's state_dict
LAYOUTS = {
    f"{form}/{token}": (container, prefix, token)
    for form, container, prefix in [
        ("bare", "file", ""),                                   # README: torch.load + strict
        ("lightning-learner.TS_ViT", "state_dict", "learner.TS_ViT."),         # learner.py 8d19b88
        ("lightning-learner.ts_encoder", "state_dict", "learner.ts_encoder."),  # model.py 8dfc8e6 on
        ("prefixed-ts_encoder", "file", "ts_encoder."),      # model_utils.py a48994f
        ("prefixed-TS_ViT", "file", "TS_ViT."),              # model_utils.py a48994f
    ]
    for token in ("time_token", "class_token")
}

# src/Data/dataset_utils.py: BAND_NAMES, SEN4MAP_SENTINEL_MEAN, SEN4MAP_SENTINEL_STD
BAND_NAMES = ["B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12"]
SEN4MAP_MEAN = [67.0, 122.0, 93.27, 158.5, 160.77, 174.27, 162.27, 149.0, 84.5, 66.27]
SEN4MAP_STD = [2089.0, 2598.45, 3214.5, 3620.45, 4033.61, 4613.0, 4825.45, 4945.72, 5140.84, 4414.45]
# src/utils/configs/cli_args.py at 8dfc8e6 / ca79a49: --channels default
TRAIN_CHANNELS = ["B4", "B3", "B2", "B5", "B6", "B7", "B8", "B8A", "B11", "B12"]


def _size(symbol, dims) -> int:
    if isinstance(symbol, int):
        return symbol
    factor = int(symbol[:-1]) if len(symbol) > 1 else 1
    return factor * dims[symbol[-1]]


def published_shapes(dims: dict, token: str = "time_token") -> dict[str, tuple[int, ...]]:
    """Bare key -> shape of the published encoder with the given dimensions."""
    out = {}
    for name, shape in ENCODER_TABLE:
        sizes = tuple(_size(s, dims) for s in shape)
        if "{i}" in name:
            out |= {name.format(i=i): sizes for i in range(dims["L"])}
        else:
            out[name.format(token=token)] = sizes
    return out


def random_encoder(dims: dict, token: str = "time_token", seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors for every key of the table (positions and token non-zero, so they matter)."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in published_shapes(dims, token).items():
        t = torch.randn(shape, generator=g)
        if name.endswith("weight") and len(shape) == 2:
            t = t / math.sqrt(shape[1])
        elif name.endswith(("norm1.weight", "norm2.weight", "mlp_head.0.weight")):
            t = 1.0 + 0.1 * t
        elif name.endswith("bias"):
            t = 0.1 * t
        state[name] = t
    return state


def write_published(path, layout: str, dims: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    """Write a checkpoint in ``layout`` (a key of :data:`LAYOUTS`); returns the bare encoder state."""
    container, prefix, token = LAYOUTS[layout]
    state = random_encoder(dims, token, seed)
    d = dims["D"]
    if container == "file" and not prefix:
        torch.save(state, path)
        return state
    keyed = {prefix + k: v for k, v in state.items()}
    if container == "file":  # the cross-view model's own state dict: encoder, queue (model.py)
        torch.save(keyed | {"queue": torch.randn(d, 16), "queue_ptr": torch.zeros(1, dtype=torch.long)}, path)
        return state
    # a Lightning checkpoint of trainer.py / learner.py: the learner's encoder, its queue, the
    # validation copy of the encoder at the top level (TS_ViT; other values here, so that a test sees
    # which copy loads), part of the CLIP used for validation, the learnable logit scale, and the
    # command-line arguments as hyper-parameters
    copy = random_encoder(dims, token, seed + 1)
    inner = keyed | {f"TS_ViT.{k}": v for k, v in copy.items()} | {
        "learner.queue": torch.randn(d, 16), "learner.queue_ptr": torch.zeros(1, dtype=torch.long),
        "logit_scale": torch.tensor(2.659), "clip_model.positional_embedding": torch.randn(77, d)}
    args = argparse.Namespace(LR=1e-4, BATCH_SIZE=64, channels=TRAIN_CHANNELS, dropout_type="TSMixAug",
                              queue_size=2048)
    torch.save({"epoch": 99, "global_step": 12_000, "pytorch-lightning_version": "1.9.5", "state_dict": inner,
                "hyper_parameters": {"args": args, "classes": ["Artificial Land", "Cropland"]}}, path)
    return state


# ---- the loaders' input rules --------------------------------------------------------------------

def loader_input(raw: torch.Tensor, rule: str) -> torch.Tensor:
    """``(B, 12, 10)`` L2A digital numbers -> ``(B, 12, 10, 1, 1)`` encoder input by a loader's rule.

    reference-eval: ``_apply_transform`` of ``src/Data/sen4map_data.py`` (a48994f), torchvision's
    Normalize with the constants of the bands in order, no clamp. reference-clamped: ``_transform`` +
    ``torch.clamp(image, 0, 1)`` of ``Sen4MapDataset_withlabels`` (8dfc8e6; its double indexing by
    the channel list leaves the constants in band order). reference-train: ``CrossViewDataset``
    (``src/Data/lucas_sen_data.py``, 8dfc8e6): constants indexed by :data:`TRAIN_CHANNELS` while the
    image keeps the stored band order, ``(x - m) / (s + 1e-6)``, clamped.
    """
    x = raw[..., None, None].float()
    if rule == "reference-train":
        idx = [BAND_NAMES.index(c) for c in TRAIN_CHANNELS]
        mean = torch.tensor([SEN4MAP_MEAN[i] for i in idx]).view(1, 1, -1, 1, 1)
        std = torch.tensor([SEN4MAP_STD[i] for i in idx]).view(1, 1, -1, 1, 1)
        return ((x - mean) / (std + 1e-6)).clamp(0, 1)
    mean = torch.tensor(SEN4MAP_MEAN).view(1, 1, -1, 1, 1)
    std = torch.tensor(SEN4MAP_STD).view(1, 1, -1, 1, 1)
    x = (x - mean) / std
    return x.clamp(0, 1) if rule == "reference-clamped" else x


def temporal_reduce(x: torch.Tensor, steps: int) -> torch.Tensor:
    """The newest evaluation's reduction of normalised months (``test_zeroshot`` of
    ``src/Evaluation/zeroshot_train_eval.py`` and ``_temporal_composite`` of ``sen4map_data.py``)."""
    if steps == 4:
        b = x.shape[0]
        return x.view(b, 4, 3, *x.shape[2:]).median(dim=2)[0]
    if steps == 1:
        return torch.median(x, dim=1, keepdim=True).values
    return x


# ---- the newest published inference() -------------------------------------------------------------

def _layer_norm(x, w, b):
    return F.layer_norm(x, (x.shape[-1],), w, b, eps=1e-5)


def _embed(state, x):
    b, t = x.shape[:2]
    return x.reshape(b, t, -1) @ state["spectral_embedding.1.weight"].T + state["spectral_embedding.1.bias"]


def _encode(state, h, heads: int, token: str):
    """Class token, post-norm ReLU ``nn.TransformerEncoderLayer``s written out (no dropout), head."""
    b, _, d = h.shape
    h = torch.cat([state[token].expand(b, -1, -1), h], dim=1)
    n = h.shape[1]
    dh = d // heads
    layers = len({k.split(".")[2] for k in state if k.startswith("transformer.layers.")})
    for i in range(layers):
        p = f"transformer.layers.{i}."
        qkv = h @ state[p + "self_attn.in_proj_weight"].T + state[p + "self_attn.in_proj_bias"]
        q, k, v = qkv.split(d, -1)
        q, k, v = (z.reshape(b, n, heads, dh).transpose(1, 2) for z in (q, k, v))
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(dh), dim=-1) @ v
        att = att.transpose(1, 2).reshape(b, n, d)
        att = att @ state[p + "self_attn.out_proj.weight"].T + state[p + "self_attn.out_proj.bias"]
        h = _layer_norm(h + att, state[p + "norm1.weight"], state[p + "norm1.bias"])
        ff = torch.relu(h @ state[p + "linear1.weight"].T + state[p + "linear1.bias"])
        ff = ff @ state[p + "linear2.weight"].T + state[p + "linear2.bias"]
        h = _layer_norm(h + ff, state[p + "norm2.weight"], state[p + "norm2.bias"])
    out = _layer_norm(h[:, 0], state["mlp_head.0.weight"], state["mlp_head.0.bias"])
    return out @ state["mlp_head.1.weight"].T + state["mlp_head.1.bias"]


def inference(state: dict[str, torch.Tensor], x: torch.Tensor, heads: int, token: str = "time_token"):
    """``TimeSenCLIPEncoder.inference`` of a48994f on ``(B, T, S, H, W)``: spectral embedding, positions
    (T=1: nearest-neighbour interpolation of the 12; T=4: median of each quarter's three), class
    token, post-norm ReLU encoder layers of ``nn.TransformerEncoderLayer`` written out, head."""
    h = _embed(state, x)
    b, t, d = h.shape
    pos = state["time_pos_encoding"].expand(b, -1, -1)
    if t == 1:
        pos = F.interpolate(pos.permute(0, 2, 1).unsqueeze(-1), size=(1, 1), mode="nearest")
        pos = pos.squeeze(-1).permute(0, 2, 1)
    elif t == 4:
        pos = pos.reshape(b, 4, 3, d).median(dim=2).values
    return _encode(state, h + pos, heads, token)


def training_forward(state: dict[str, torch.Tensor], x: torch.Tensor, heads: int, temporal,
                     token: str = "time_token"):
    """``TimeSenCLIPEncoder.forward`` of a48994f in training with ``dropout_type='TSMixAug'`` (dropout
    rate 0), on ``(B, 12, S, H, W)``, given its random draw ``temporal``: ``None`` (not applied),
    ``"median"`` (``_tsmixaug`` pools: ``torch.median`` over the time axis of the embedded tokens) or
    the first dropped month of ``_quarter_drop``. The tokens then take ``time_pos[:, mask]``, or the
    mean position when one step is left."""
    h = _embed(state, x)
    b, t, _ = h.shape
    mask = torch.ones(t, dtype=torch.bool)
    if temporal == "median":
        h = torch.median(h, dim=1, keepdim=True).values
        mask = torch.ones(1, dtype=torch.bool)
    elif temporal is not None:
        mask[temporal:temporal + 3] = False
        h = h[:, mask]
    pos = state["time_pos_encoding"].expand(b, -1, -1)
    pos = pos[:, mask] if h.shape[1] > 1 else pos.mean(dim=1, keepdim=True)
    return _encode(state, h + pos, heads, token)


def reference_embeddings(state, raw, steps: int, rule: str, heads: int, token: str = "time_token"):
    """L2-normalised embeddings of the newest evaluation path: loader rule, reduction, inference()."""
    with torch.no_grad():
        out = inference(state, temporal_reduce(loader_input(raw, rule), steps), heads, token)
    return F.normalize(out, dim=-1)


def series(n: int = 8, seed: int = 3) -> torch.Tensor:
    """``(n, 12, 10)`` digital numbers spread so that every rule differs: below the means (negative
    before a clamp) and above mean + std (above 1)."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 12, 10, generator=g) * 6000 + 1
