"""Throughput benchmark: `python -m helpers.bench` prints images/s for

  (a) the training step alone (forward, backward, SGD step) on pre-made tensors in memory,
  (b) this project's training loop (resident uint8 data, batched augmentation), per recipe,
  (c) the report's way: per-sample PIL transforms through a DataLoader, fp32 NCHW,

for each numeric setting (fp32/bf16, NCHW/channels_last), with the ratios the speed issue asks for.
It is a benchmark, not a test: figures vary with the machine and with other load on it.
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import torch
from torch import nn

from .config import make_config
from .data import load_cifar10
from .models import build_model
from .recipes import get_recipe
from .train import _autocast, evaluate, make_optimizer, make_scheduler, resolve_device, train_epoch


def _model(device, channels_last):
    torch.manual_seed(0)
    m = build_model().to(device)
    return m.to(memory_format=torch.channels_last) if channels_last else m


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench_step(device, precision="fp32", channels_last=False, steps=20, batch=128, compile=False) -> dict:
    """Return images/s of the bare training step on one pre-made batch (and compile seconds)."""
    model = _model(device, channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    x = torch.rand(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    fwd = torch.compile(model) if compile else model
    crit = nn.CrossEntropyLoss()

    def step():
        with _autocast(device, precision):
            loss = crit(fwd(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    t = time.perf_counter()
    for _ in range(3):
        step()
    _sync(device)
    warm = time.perf_counter() - t
    t = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return {"images_per_s": steps * batch / (time.perf_counter() - t), "warmup_s": warm}


def bench_loop(device, data, recipe, precision="fp32", channels_last=False, images=2560) -> dict:
    """Return images/s of this project's train_epoch (and of evaluation) on `images` resident images."""
    cfg = make_config(profile="full", recipe=recipe, precision=precision, channels_last=channels_last,
                      device=device.type)
    model = _model(device, channels_last)
    opt = make_optimizer(model, cfg)
    sched, per_step = make_scheduler(opt, cfg, 100)
    x, y = data.train_x[:images].to(device), data.train_y[:images].to(device)
    g = torch.Generator(device=device if device.type == "cuda" else "cpu").manual_seed(0)
    crit = nn.CrossEntropyLoss()
    train_epoch(model, opt, sched, per_step, x[:384], y[:384], get_recipe(recipe), cfg, g, crit)  # warm-up
    _sync(device)
    t = time.perf_counter()
    train_epoch(model, opt, sched, per_step, x, y, get_recipe(recipe), cfg, g, crit)
    _sync(device)
    train_ips = images / (time.perf_counter() - t)
    tx, ty = data.test_x[:2000].to(device), data.test_y[:2000].to(device)
    t = time.perf_counter()
    evaluate(model, tx, ty, recipe, precision=precision, channels_last=channels_last)
    _sync(device)
    return {"images_per_s": train_ips, "eval_images_per_s": len(tx) / (time.perf_counter() - t)}


class _ReportStyleDataset(torch.utils.data.Dataset):
    """CIFAR-10 the way torchvision.datasets.CIFAR10 serves it: HWC uint8 -> PIL -> transform."""

    def __init__(self, x_uint8, y, transform):
        self.data = x_uint8.permute(0, 2, 3, 1).numpy()
        self.targets, self.transform = y.tolist(), transform

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        from PIL import Image
        return self.transform(Image.fromarray(self.data[i])), self.targets[i]


def bench_report_style(data, recipe, workers=(0, 1, 2), images=2560) -> dict:
    """Return the best images/s over num_workers of the report's pipeline (CPU, fp32, NCHW)."""
    device = torch.device("cpu")
    ds = _ReportStyleDataset(data.train_x[:images], data.train_y[:images], get_recipe(recipe).train_transform())
    best = {}
    for w in workers:
        model = _model(device, False)
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
        crit = nn.CrossEntropyLoss()
        loader = torch.utils.data.DataLoader(ds, batch_size=128, shuffle=True, num_workers=w,
                                             persistent_workers=w > 0)
        for epoch in range(2):  # the first pass warms up workers and kernels
            t, n = time.perf_counter(), 0
            for xb, yb in loader:
                loss = crit(model(xb), yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                n += len(xb)
                if epoch == 0 and n >= 384:
                    break
        ips = n / (time.perf_counter() - t)
        if ips > best.get("images_per_s", 0):
            best = {"images_per_s": ips, "num_workers": w}
    return best


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m helpers.bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda")
    ap.add_argument("--data-dir", default=os.environ.get("CIFAR10_DIR") or "synthetic",
                    help="data for (b) and (c): a CIFAR-10 folder, or 'synthetic' (default without $CIFAR10_DIR)")
    ap.add_argument("--images", type=int, default=2560, help="images per timed pass (20 batches of 128)")
    ap.add_argument("--steps", type=int, default=20, help="timed steps for (a)")
    ap.add_argument("--settings", default="fp32,fp32+cl,bf16,bf16+cl",
                    help="comma list of fp32 | bf16, each optionally +cl (channels_last)")
    ap.add_argument("--recipes", default="crop,flip_rotate")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile on (a), compile time counted")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{platform.processor() or 'cpu'}"
    print(f"device: {device.type} ({name}), torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"cores {os.cpu_count()}")
    data = load_cifar10(args.data_dir, train_size=max(args.images, 2560) // 10 * 10 + 10, test_size=2000)
    print(f"data: {data.source} ({args.data_dir}); batch 128; {args.images} images per timed pass\n")
    recipes = args.recipes.split(",")
    rows = []
    for s in args.settings.split(","):
        precision, cl = s.split("+")[0], s.endswith("+cl")
        a = bench_step(device, precision, cl, args.steps)["images_per_s"]
        row = {"setting": s, "a_step": a}
        for r in recipes:
            b = bench_loop(device, data, r, precision, cl, args.images)
            row[f"b_{r}"] = b["images_per_s"]
            row[f"eval_{r}"] = b["eval_images_per_s"]
        rows.append(row)
        print(f"{s:>9}: (a) step {a:7.0f} img/s | " +
              " | ".join(f"(b) {r} {row[f'b_{r}']:6.0f} img/s [{row[f'b_{r}'] / a:.2f} of (a)]" for r in recipes) +
              f" | eval {row[f'eval_{recipes[0]}']:.0f} img/s", flush=True)
    if args.compile:
        c = bench_step(device, "fp32", False, args.steps, compile=True)
        print(f"torch.compile fp32: (a) step {c['images_per_s']:.0f} img/s, first 3 steps incl. compile "
              f"{c['warmup_s']:.1f} s")
    if device.type == "cpu":
        print()
        for r in recipes:
            c = bench_report_style(data, r, images=args.images)
            base = rows[0][f"b_{r}"]
            best = max(rows, key=lambda row: row[f"b_{r}"])
            print(f"(c) report-style {r}: {c['images_per_s']:.0f} img/s (num_workers={c['num_workers']}) | "
                  f"(b)/(c): fp32 {base / c['images_per_s']:.2f}, best setting {best['setting']} "
                  f"{best[f'b_{r}'] / c['images_per_s']:.2f}", flush=True)
    return rows


if __name__ == "__main__":
    main()
