"""Training throughput: cached ground embeddings vs encoding the ground photos in every step.

Both modes run the same training step on the same backbone, batch size and
device: satellite tower forward + backward (trunk + head), average pooling of
4 ground views, symmetric InfoNCE, AdamW step. They differ only in where the
ground-view embeddings come from:

``cached``
    looked up in a ground-embedding array (what ``senclip train`` does with
    the cache written by ``senclip embed-ground``);
``online``
    the 4 ground photos of each point are encoded by the frozen CLIP image
    tower (no grad) in every step.

Figures are printed as samples/s and a ratio, all measured in this run:
``compute`` (photos already decoded, as tensors in memory) and one
``with-io WxH`` line per ``--photo-sizes`` entry (each step also reads its
inputs from disk: the chip JPEGs in both modes, plus the 4 photo JPEGs,
loaded the way ``senclip embed-ground`` loads them, in online mode; photos are
JPEGs of that size made from EuroSAT images plus fine noise, their mean file
size printed). Camera photos are several megapixels, so the sizes span
0.2 to 5 MP; the ratio grows with the photo size because only online
training decodes photos.

On a CPU a training step (forward + backward + AdamW) costs about three
frozen forwards, so with decoded photos in memory four extra frozen
forwards bound the compute ratio near (3 + 4) / 3 = 2.3.

    python benchmarks/train_throughput.py --model senclip-tiny-vit --batch 32 --steps 10
    python benchmarks/train_throughput.py --model ViT-B-32 --steps 3 --photo-sizes 512x384,2592x1944
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import Machine, flops_of, flops_per_sample

VIEWS = 4


def _jpegs(eurosat: Path, n: int) -> list[Path]:
    files = sorted(eurosat.rglob("*.jpg"))
    if len(files) < n:
        raise SystemExit(f"need {n} JPEGs under {eurosat}, found {len(files)}")
    return files[:: max(len(files) // n, 1)][:n]


def _write_photos(chips: list[Path], out: Path, size: tuple[int, int]) -> list[Path]:
    from PIL import Image

    rng = np.random.default_rng(0)
    photos = []
    for i, chip in enumerate(chips):
        p = out / f"photo_{size[0]}x{size[1]}_{i}.jpg"
        img = np.asarray(Image.open(chip).convert("RGB").resize(size, Image.BICUBIC), dtype=np.float32)
        img += rng.normal(0, 6, img.shape)  # fine detail: upscaled chips alone compress unrealistically well
        Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(p, quality=90)
        photos.append(p)
    return photos


def _size(text: str) -> tuple[int, int]:
    w, _, h = text.lower().partition("x")
    return int(w), int(h)


def _read(paths: list[Path], size: int) -> torch.Tensor:
    from torchvision.io import ImageReadMode, decode_image, read_file

    out = []
    for p in paths:
        img = decode_image(read_file(str(p)), mode=ImageReadMode.RGB).float().div(255).unsqueeze(0)
        out.append(F.interpolate(img, size=(size, size), mode="bilinear", antialias=True,
                                 align_corners=False))
    return torch.cat(out)


def _photos(paths: list[Path], size: int) -> torch.Tensor:
    """Ground photos as ``senclip embed-ground`` loads them (reduced-scale JPEG decode, resize, crop)."""
    from senclip.data.ground_cache import load_photo

    return torch.stack([load_photo(str(p), size) for p in paths])


def _step(tower, opt, loss_fn, chips: torch.Tensor, views: torch.Tensor) -> None:
    target = F.normalize(F.normalize(views, dim=-1).mean(1), dim=-1)
    loss = loss_fn(tower(chips), target)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def run_mode(mode: str, io: bool, args, tower, frozen, opt, loss_fn, files: dict, dim: int) -> float:
    """Samples per second of ``args.steps`` timed steps (after one warm-up step)."""
    device, b, size = args.device, args.batch, tower.preprocess.image_size
    cache = np.random.default_rng(0).standard_normal((len(files["chips"]), VIEWS, dim)).astype(np.float32)
    chips_mem = _read(files["chips"], size)
    photos_mem = _photos(files["photos"], frozen.preprocess.image_size)
    n_points = len(files["chips"])
    t0 = None
    for step in range(args.steps + 1):
        if step == 1:
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        idx = [(step * b + i) % n_points for i in range(b)]
        chips = _read([files["chips"][i] for i in idx], size) if io else chips_mem[idx]
        if mode == "cached":
            views = torch.from_numpy(cache[idx])
        else:
            pidx = [(i * VIEWS + v) % len(files["photos"]) for i in idx for v in range(VIEWS)]
            photos = _photos([files["photos"][j] for j in pidx], frozen.preprocess.image_size) if io \
                else photos_mem[pidx]
            with torch.no_grad():
                views = frozen(photos.to(device)).view(b, VIEWS, -1)
        _step(tower, opt, loss_fn, chips.to(device), views.to(device))
    if device.type == "cuda":
        torch.cuda.synchronize()
    return args.steps * b / (time.perf_counter() - t0)


def main() -> None:
    from senclip.losses import InfoNCELoss
    from senclip.models import create_model
    from senclip.models.head import HeadConfig, ProjectionHead

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="senclip-tiny-vit", help="open_clip architecture (both towers)")
    ap.add_argument("--pretrained", default=None, help="base weights (default: random)")
    ap.add_argument("--batch", type=int, default=32, help="points per step (default 32, the paper's)")
    ap.add_argument("--steps", type=int, default=10, help="timed steps per mode")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--photo-sizes", default="512x384,1024x768,2048x1536,2592x1944",
                    help="comma-separated WxH of the photo JPEGs of the with-io runs")
    default_data = Path(__file__).resolve().parents[2] / "shared/data/eurosat_rgb/train"
    ap.add_argument("--eurosat", default=str(default_data), help="EuroSAT RGB folder used for chips/photos")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    args.device = torch.device(args.device)
    torch.manual_seed(0)
    base = create_model(args.model, pretrained=args.pretrained, device=args.device)
    frozen = create_model(args.model, pretrained=args.pretrained, device=args.device).image_tower.eval()
    frozen.requires_grad_(False)
    tower = base.image_tower.train()
    dim = tower.visual.output_dim
    tower.head = ProjectionHead(HeadConfig(dim, dim, 0.1)).to(args.device)
    loss_fn = InfoNCELoss(0.07).to(args.device)
    opt = torch.optim.AdamW([*tower.parameters(), *loss_fn.parameters()], lr=1e-5)
    sizes = [_size(t) for t in args.photo_sizes.split(",") if t.strip()]
    machine = Machine.measure(args.device.type)
    print(machine.header())
    with tempfile.TemporaryDirectory() as tmp:
        chips = _jpegs(Path(args.eurosat), 4 * args.batch)
        print(f"model {args.model}, batch {args.batch}, device {args.device}, threads {args.threads}, "
              f"{VIEWS} ground views, {args.steps} timed steps per mode, fp32")
        # FLOPs per point: the training step, plus VIEWS frozen forwards online (torch's counter)
        x = _read(chips[: args.batch], tower.preprocess.image_size).to(args.device)
        target = torch.randn(args.batch, VIEWS, dim, device=args.device)
        step_flops = flops_of(lambda: _step(tower, opt, loss_fn, x, target), args.batch)
        side = frozen.preprocess.image_size
        photo = torch.rand(2, 3, side, side, device=args.device)
        flops = {"cached": step_flops, "online": step_flops + VIEWS * flops_per_sample(frozen, photo)}
        for size in [None, *sizes]:
            photos = _write_photos(chips[: 2 * args.batch], Path(tmp), size or (512, 384))
            files = {"chips": chips, "photos": photos}
            io = size is not None
            cached = run_mode("cached", io, args, tower, frozen, opt, loss_fn, files, dim)
            online = run_mode("online", io, args, tower, frozen, opt, loss_fn, files, dim)
            label = f"with-io {size[0]}x{size[1]}" if io else "compute"
            mb = sum(p.stat().st_size for p in photos) / len(photos) / 1e6
            print(f"{label:20s} cached {cached:8.1f} samples/s | online {online:8.1f} samples/s | "
                  f"ratio {cached / online:5.2f}x" + (f" | photo JPEG {mb:.2f} MB" if io else ""))
            for mode, rate in (("cached", cached), ("online", online)):
                print("    " + machine.line(f"{label} {mode}", rate, flops[mode], "fp32", unit="sample"))


if __name__ == "__main__":
    main()
