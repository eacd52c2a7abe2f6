#!/usr/bin/env python3
"""The PyTorch peer of `atelier train faces`: the same recipe on the same pictures, CPU only.

Generator: the Faces DCGAN (from gan-face-generate's weights, or initialised from scratch);
discriminator: the standard 64x64 DCGAN one; DCGAN initialisation; Adam(lr, betas (0.5, 0.999))
for both; BCEWithLogitsLoss; one D step then one G step per iteration (the PyTorch DCGAN
example's order), fresh N(0, 1) latents; DiffAugment (color, translation, cutout; Zhao et al.
2020, the authors' DiffAugment_pytorch.py) on real and generated pictures when --augment on.
Pictures are loaded as Atelier loads them: transparency composited onto white with the same
integer formula, centre-cropped, resized to 64x64 (bicubic), then v / 127.5 - 1. Batches walk
through shuffled epochs.

Prints one JSON object: throughput over the training steps only (no loading, no snapshots),
peak RSS, the last losses, and the generator snapshots it wrote (--snapshot-every), which
`atelier bench swd` scores with the same code as Atelier's own runs.

    python benches/train_faces_peer.py --images DIR --model models/dcgan-weights.tar \
        --steps 60 --batch 32 --threads 2 --snapshot-every 20 --snapshot-dir /tmp/snaps
"""
import argparse
import json
import os
import resource
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image


class Net(nn.Module):
    """`main` holds the layers, so tensors are named `main.0.weight`, … as in the Faces file."""

    def __init__(self, *layers):
        super().__init__()
        self.main = nn.Sequential(*layers)

    def forward(self, x):
        return self.main(x)


def generator(nz=100, ngf=64):
    """The Faces DCGAN generator (widths as parameters: the test fixture uses tiny ones)."""
    return Net(
        nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 8), nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 4), nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
        nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),
        nn.ConvTranspose2d(ngf, 3, 4, 2, 1, bias=False), nn.Tanh())


def discriminator(ndf=64):
    """The standard 64x64 DCGAN discriminator."""
    return Net(
        nn.Conv2d(3, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 4), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 8), nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False))


def weights_init(m):
    name = m.__class__.__name__
    if name.find("Conv") != -1:
        nn.init.normal_(m.weight.data, 0.0, 0.02)
    elif name.find("BatchNorm") != -1:
        nn.init.normal_(m.weight.data, 1.0, 0.02)
        nn.init.constant_(m.bias.data, 0)


# DiffAugment_pytorch.py (Zhao et al. 2020), policy 'color,translation,cutout'.
def rand_brightness(x):
    return x + (torch.rand(x.size(0), 1, 1, 1, dtype=x.dtype) - 0.5)


def rand_saturation(x):
    x_mean = x.mean(dim=1, keepdim=True)
    return (x - x_mean) * (torch.rand(x.size(0), 1, 1, 1, dtype=x.dtype) * 2) + x_mean


def rand_contrast(x):
    x_mean = x.mean(dim=[1, 2, 3], keepdim=True)
    return (x - x_mean) * (torch.rand(x.size(0), 1, 1, 1, dtype=x.dtype) + 0.5) + x_mean


def rand_translation(x, ratio=0.125):
    shift_x, shift_y = int(x.size(2) * ratio + 0.5), int(x.size(3) * ratio + 0.5)
    translation_x = torch.randint(-shift_x, shift_x + 1, size=[x.size(0), 1, 1])
    translation_y = torch.randint(-shift_y, shift_y + 1, size=[x.size(0), 1, 1])
    grid_batch, grid_x, grid_y = torch.meshgrid(
        torch.arange(x.size(0)), torch.arange(x.size(2)), torch.arange(x.size(3)), indexing="ij")
    grid_x = torch.clamp(grid_x + translation_x + 1, 0, x.size(2) + 1)
    grid_y = torch.clamp(grid_y + translation_y + 1, 0, x.size(3) + 1)
    x_pad = F.pad(x, [1, 1, 1, 1, 0, 0, 0, 0])
    return x_pad.permute(0, 2, 3, 1).contiguous()[grid_batch, grid_x, grid_y].permute(0, 3, 1, 2)


def rand_cutout(x, ratio=0.5):
    cutout_size = int(x.size(2) * ratio + 0.5), int(x.size(3) * ratio + 0.5)
    offset_x = torch.randint(0, x.size(2) + (1 - cutout_size[0] % 2), size=[x.size(0), 1, 1])
    offset_y = torch.randint(0, x.size(3) + (1 - cutout_size[1] % 2), size=[x.size(0), 1, 1])
    grid_batch, grid_x, grid_y = torch.meshgrid(
        torch.arange(x.size(0)), torch.arange(cutout_size[0]), torch.arange(cutout_size[1]),
        indexing="ij")
    grid_x = torch.clamp(grid_x + offset_x - cutout_size[0] // 2, min=0, max=x.size(2) - 1)
    grid_y = torch.clamp(grid_y + offset_y - cutout_size[1] // 2, min=0, max=x.size(3) - 1)
    mask = torch.ones(x.size(0), x.size(2), x.size(3), dtype=x.dtype)
    mask[grid_batch, grid_x, grid_y] = 0
    return x * mask.unsqueeze(1)


def diff_augment(x):
    for f in (rand_brightness, rand_saturation, rand_contrast, rand_translation, rand_cutout):
        x = f(x)
    return x


def load_pictures(folder, background=(255, 255, 255)):
    """As Atelier's pictures.rs: PNG/JPEG/WebP directly in the folder, sorted by name."""
    out = []
    bg = np.array(background, dtype=np.uint32)
    for name in sorted(os.listdir(folder)):
        if name.startswith(".") or not name.lower().endswith((".png", ".jpg", ".jpeg", ".webp")):
            continue
        try:
            img = Image.open(os.path.join(folder, name))
            img.load()
        except Exception:  # noqa: BLE001 - skipped, as Atelier skips unreadable files
            continue
        rgba = np.asarray(img.convert("RGBA"), dtype=np.uint32)
        a = rgba[..., 3:4]
        rgb = ((rgba[..., :3] * a + bg * (255 - a) + 127) // 255).astype(np.uint8)
        h, w = rgb.shape[:2]
        if min(h, w) < 32:
            continue
        s = min(h, w)
        y0, x0 = (h - s) // 2, (w - s) // 2
        sq = Image.fromarray(rgb[y0:y0 + s, x0:x0 + s])
        if s != 64:
            sq = sq.resize((64, 64), Image.BICUBIC)
        out.append(np.asarray(sq))
    data = torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    return data.contiguous()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", required=True)
    ap.add_argument("--model", help="the Faces checkpoint (netG_state_dict) to fine-tune")
    ap.add_argument("--from", dest="start", choices=["faces", "scratch"], default="faces")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--augment", choices=["on", "off"], default="on")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--snapshot-every", type=int, default=0)
    ap.add_argument("--snapshot-dir")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    data = load_pictures(a.images)
    n = data.size(0)
    net_g, net_d = generator(), discriminator()
    net_d.apply(weights_init)
    if a.start == "faces":
        ckpt = torch.load(a.model, map_location="cpu", weights_only=True)
        net_g.load_state_dict(ckpt.get("netG_state_dict", ckpt))
    else:
        net_g.apply(weights_init)
    net_g.train()
    net_d.train()
    opt_d = torch.optim.Adam(net_d.parameters(), lr=a.lr, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(net_g.parameters(), lr=a.lr, betas=(0.5, 0.999))
    crit = nn.BCEWithLogitsLoss()
    t_aug = diff_augment if a.augment == "on" else (lambda x: x)
    ones, zeros = torch.ones(a.batch), torch.zeros(a.batch)
    order, pos = torch.randperm(n), 0
    snapshots = []

    def snapshot(step):
        if not a.snapshot_every or not a.snapshot_dir:
            return
        from safetensors.torch import save_file
        os.makedirs(a.snapshot_dir, exist_ok=True)
        path = os.path.join(a.snapshot_dir, f"pytorch-step{step:05d}.safetensors")
        save_file({k: v.contiguous() for k, v in net_g.state_dict().items()}, path)
        snapshots.append({"step": step, "path": path})

    snapshot(0)
    train_seconds = 0.0
    losses = None
    for step in range(1, a.steps + 1):
        idx = []
        while len(idx) < a.batch:
            if pos == n:
                order, pos = torch.randperm(n), 0
            take = min(a.batch - len(idx), n - pos)
            idx.extend(order[pos:pos + take].tolist())
            pos += take
        real = data[idx]
        t0 = time.perf_counter()
        z = torch.randn(a.batch, 100, 1, 1)
        net_d.zero_grad()
        err_real = crit(net_d(t_aug(real)).view(-1), ones)
        err_real.backward()
        fake = net_g(z)
        err_fake = crit(net_d(t_aug(fake.detach())).view(-1), zeros)
        err_fake.backward()
        opt_d.step()
        net_g.zero_grad()
        err_g = crit(net_d(t_aug(fake)).view(-1), ones)
        err_g.backward()
        opt_g.step()
        train_seconds += time.perf_counter() - t0
        losses = {"d_real": err_real.item(), "d_fake": err_fake.item(), "g": err_g.item()}
        if a.snapshot_every and (step % a.snapshot_every == 0 or step == a.steps):
            snapshot(step)
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({
        "engine": "pytorch",
        "version": torch.__version__,
        "threads": torch.get_num_threads(),
        "pictures": n,
        "steps": a.steps,
        "batch": a.batch,
        "train_seconds": train_seconds,
        "samples_per_s": a.steps * a.batch / train_seconds if train_seconds else 0.0,
        "peak_rss_mb": rss_kib / 1024.0,
        "final_losses": losses,
        "snapshots": snapshots,
    }))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
