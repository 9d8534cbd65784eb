"""Throughput benchmark: `python -m helpers.bench` prints, per numeric setting (fp32/bf16, NCHW/channels_last),
images/s of

  step   the bare training step (forward, backward, SGD) on one pre-made batch: eager, and as a captured
         CUDA graph (helpers.step.StaticStep; CUDA only);
  loop   this project's training loop (resident uint8 data, batched augmentation): eager, and graph;
  report the report's way: per-sample PIL transforms through a DataLoader, on the same device;
  eval   evaluation in large batches;

and what a per-epoch checkpoint (last.pt of the full ResNet-18, with its SHA-256) costs: written
synchronously, and the part the training thread waits for when it is written in the background.

With no arguments it is short (under 3 minutes on a loaded 2-core CPU); `--full` runs the longer sweep
(every setting, two recipes, more steps, DataLoader worker counts, torch.compile). It is a benchmark,
not a test: figures vary with the machine and with other load on it, so each table names its command,
device, data and date.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from . import runs as store
from .config import make_config
from .data import load_cifar10
from .models import build_model
from .recipes import get_recipe
from .step import StaticStep
from .train import (_autocast, evaluate, make_optimizer, make_scheduler, resolve_device, train_epoch,
                    train_epoch_static)

QUICK = {"cpu": dict(settings="fp32", recipes="crop", steps=2, images=256, workers="0"),
         "cuda": dict(settings="fp32,bf16+cl", recipes="crop", steps=50, images=5120, workers="4")}
FULL = {"cpu": dict(settings="fp32,fp32+cl,bf16,bf16+cl", recipes="crop,flip_rotate", steps=20, images=2560,
                    workers="0,1,2"),
        "cuda": dict(settings="fp32,fp32+cl,bf16,bf16+cl", recipes="crop,flip_rotate", steps=200, images=25600,
                     workers="0,4,8")}


def _model(device, channels_last):
    torch.manual_seed(0)
    m = build_model().to(device)
    return m.to(memory_format=torch.channels_last) if channels_last else m


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def _timed(fn, n: int, device) -> float:
    """Return seconds per call of fn over n calls (after the caller's warm-up)."""
    _sync(device)
    t = time.perf_counter()
    for _ in range(n):
        fn()
    _sync(device)
    return (time.perf_counter() - t) / n


def bench_step(device, precision="fp32", channels_last=False, steps=20, batch=128, compile=False,
               graph=False) -> dict:
    """Return images/s of the bare training step on one pre-made batch: eager, compiled, or a CUDA graph."""
    model = _model(device, channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    x = torch.rand(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    crit = nn.CrossEntropyLoss()
    if graph:
        stepper = StaticStep(model, opt, crit, batch, device, precision, channels_last)

        def step():
            stepper.step(x, y)
    else:
        fwd = torch.compile(model) if compile else model

        def step():
            with _autocast(device, precision):
                loss = crit(fwd(x).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    t = time.perf_counter()
    for _ in range(5 if graph else 1 if device.type == "cpu" else 3):  # a graph warms up, captures, replays
        step()
    _sync(device)
    warm = time.perf_counter() - t
    return {"images_per_s": batch / _timed(step, steps, device), "warmup_s": warm}


def bench_loop(device, data, recipe, precision="fp32", channels_last=False, images=2560, graph=False) -> dict:
    """Return images/s of this project's training epoch (eager or graph) and of evaluation."""
    cfg = make_config(profile="full", recipe=recipe, precision=precision, channels_last=channels_last,
                      device=device.type)
    model = _model(device, channels_last)
    opt = make_optimizer(model, cfg)
    sched, per_step = make_scheduler(opt, cfg, 100)
    x, y = data.train_x[:images].to(device), data.train_y[:images].to(device)
    g = torch.Generator(device=device if device.type == "cuda" else "cpu").manual_seed(0)
    crit = nn.CrossEntropyLoss()
    rec = get_recipe(recipe)
    if graph:
        stepper = StaticStep(model, opt, crit, cfg.batch_size, device, precision, channels_last)
        warm = 5 * cfg.batch_size  # warm-up steps and the capture

        def epoch(n):
            return train_epoch_static(stepper, sched, per_step, x[:n], y[:n], rec, cfg, g)
    else:
        warm = cfg.batch_size

        def epoch(n):
            return train_epoch(model, opt, sched, per_step, x[:n], y[:n], rec, cfg, g, crit)
    epoch(warm)
    _sync(device)
    t = time.perf_counter()
    epoch(images)
    _sync(device)
    train_ips = images / (time.perf_counter() - t)
    n_eval = min(len(data.test_x), 10_000 if device.type == "cuda" else 500)
    tx, ty = data.test_x[:n_eval].to(device), data.test_y[:n_eval].to(device)
    bs = 5000 if device.type == "cuda" else 1000  # train_run's evaluation batches
    warm = bs if device.type == "cuda" else 100
    evaluate(model, tx[:warm], ty[:warm], recipe, precision=precision, channels_last=channels_last, batch_size=bs)
    secs = _timed(lambda: evaluate(model, tx, ty, recipe, precision=precision, channels_last=channels_last,
                                   batch_size=bs), 1, device)
    return {"images_per_s": train_ips, "eval_images_per_s": n_eval / secs}


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


def bench_report_style(device, data, recipe, precision="fp32", channels_last=False, workers=(0,),
                       images=2560) -> dict:
    """Return the best images/s over num_workers of the report's pipeline (PIL transforms in a DataLoader)."""
    ds = _ReportStyleDataset(data.train_x[:images], data.train_y[:images], get_recipe(recipe).train_transform())
    best = {}
    for w in workers:
        model = _model(device, channels_last)
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
        crit = nn.CrossEntropyLoss()
        loader = torch.utils.data.DataLoader(ds, batch_size=128, shuffle=True, num_workers=w,
                                             persistent_workers=w > 0, pin_memory=device.type == "cuda")
        for epoch in range(2):  # the first pass (one batch) warms up workers and kernels
            _sync(device)
            t, n = time.perf_counter(), 0
            for xb, yb in loader:
                xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
                if channels_last:
                    xb = xb.contiguous(memory_format=torch.channels_last)
                with _autocast(device, precision):
                    loss = crit(model(xb).float(), yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                n += len(xb)
                if epoch == 0:
                    break
            _sync(device)
        ips = n / (time.perf_counter() - t)
        if ips > best.get("images_per_s", 0):
            best = {"images_per_s": ips, "num_workers": w}
    return best


def bench_checkpoint(device, epochs_of_history: int = 60) -> dict:
    """Return what a per-epoch last.pt of the full ResNet-18 costs: size, synchronous save, CPU snapshot."""
    cfg = make_config(profile="full", recipe="fast", device=device.type)  # OneCycle: the largest scheduler state
    model = _model(device, False)
    opt = make_optimizer(model, cfg)
    sched, _ = make_scheduler(opt, cfg, 391)
    for p in model.parameters():  # momentum buffers exist after the first step
        opt.state[p]["momentum_buffer"] = torch.zeros_like(p)
    history = [{"epoch": e, "lr": 0.1, "train_loss": 1.0, "train_acc": 50.0, "test_loss": 1.0, "test_acc": 50.0,
                "seconds": 1.0} for e in range(1, epochs_of_history + 1)]

    def state():
        return {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "epoch": epochs_of_history, "history": history, "rng": torch.get_rng_state()}
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "last.pt"
        t = time.perf_counter()
        store.save_checkpoint(state(), path)
        sync_s = time.perf_counter() - t
        size = path.stat().st_size
        t = time.perf_counter()
        store.cpu_snapshot(state())
        snap_s = time.perf_counter() - t
    return {"megabytes": size / 1e6, "sync_s": sync_s, "snapshot_s": snap_s}


def _device_name(device) -> str:
    """Return the GPU's name, or the CPU's model name where the system tells it."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def _fmt(v) -> str:
    return f"{v:,.0f}" if isinstance(v, (int, float)) else str(v)


def main(argv=None):
    """Run the benchmark; return its rows (one dict per setting) and the checkpoint figures."""
    ap = argparse.ArgumentParser(prog="python -m helpers.bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--data-dir", default=os.environ.get("CIFAR10_DIR") or "synthetic",
                    help="data for loop/report: a CIFAR-10 folder, or 'synthetic' (default without $CIFAR10_DIR)")
    ap.add_argument("--full", action="store_true", help="the long sweep: every setting, two recipes, more steps")
    ap.add_argument("--images", type=int, help="images per timed loop/report pass (default: by device and --full)")
    ap.add_argument("--steps", type=int, help="timed steps of the bare step")
    ap.add_argument("--settings", help="comma list of fp32 | bf16, each optionally +cl (channels_last)")
    ap.add_argument("--recipes", help="comma list of recipes for the loop and report columns")
    ap.add_argument("--workers", help="comma list of DataLoader num_workers for the report column (best is shown)")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile on the bare step (with --full: on)")
    ap.add_argument("--no-checkpoint", action="store_true", help="skip the checkpoint cost")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    preset = (FULL if args.full else QUICK)[device.type]
    opt = {k: getattr(args, k) if getattr(args, k) is not None else v for k, v in preset.items()}
    settings, recipes = opt["settings"].split(","), opt["recipes"].split(",")
    workers = tuple(int(w) for w in str(opt["workers"]).split(","))
    cuda = device.type == "cuda"

    command = "python -m helpers.bench" + "".join(f" {shlex.quote(a)}" for a in (sys.argv[1:] if argv is None else argv))
    data = load_cifar10(args.data_dir, train_size=max(opt["images"], 1280) // 10 * 10 + 10,
                        test_size=10_000 if cuda and args.data_dir != "synthetic" else 2000)
    print(f"command: {command}\n"
          f"device:  {device.type} ({_device_name(device)}), torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}, cores {os.cpu_count()}\n"
          f"data:    {data.source} ({Path(args.data_dir).name if args.data_dir != 'synthetic' else 'synthetic'}), "
          f"batch 128, {opt['images']} images per timed pass, {opt['steps']} timed bare steps\n"
          f"date:    {_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='minutes')}\n"
          f"figures: images/s of training (eval: of evaluation); higher is better\n", flush=True)
    cols = ["setting", "step eager", "step graph"]
    for r in recipes:
        cols += [f"loop eager {r}", f"loop graph {r}", f"report {r}"]
    cols.append("eval")
    print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols), flush=True)
    rows = []
    for s in settings:
        precision, cl = s.split("+")[0], s.endswith("+cl")
        row = {"setting": s, "step eager": bench_step(device, precision, cl, opt["steps"])["images_per_s"],
               "step graph": bench_step(device, precision, cl, opt["steps"], graph=True)["images_per_s"]
               if cuda else "needs CUDA"}
        for r in recipes:
            b = bench_loop(device, data, r, precision, cl, opt["images"])
            row[f"loop eager {r}"], row["eval"] = b["images_per_s"], b["eval_images_per_s"]
            row[f"loop graph {r}"] = (bench_loop(device, data, r, precision, cl, opt["images"], graph=True)["images_per_s"]
                                      if cuda else "needs CUDA")
            c = bench_report_style(device, data, r, precision, cl, workers, opt["images"])
            row[f"report {r}"] = f"{c['images_per_s']:,.0f} (w={c['num_workers']})"
        rows.append(row)
        print("| " + " | ".join(_fmt(row[c]) for c in cols) + " |", flush=True)
    if args.compile or args.full:
        c = bench_step(device, "fp32", False, opt["steps"], compile=True)
        print(f"\ntorch.compile fp32 bare step: {c['images_per_s']:,.0f} img/s; first steps incl. compile "
              f"{c['warmup_s']:.1f} s")
    ck = None
    if not args.no_checkpoint:
        ck = bench_checkpoint(device)
        print(f"\ncheckpoint (last.pt of ResNet-18 + SGD momentum + OneCycle + 60-epoch history, with SHA-256, "
              f"{ck['megabytes']:.0f} MB): written synchronously {ck['sync_s']:.2f} s per epoch; "
              f"in the background the training thread waits only for the CPU snapshot, {ck['snapshot_s']:.3f} s "
              f"(plus any unfinished write of the previous epoch)")
    if not cuda:
        print("\nstep graph / loop graph: a captured CUDA graph needs CUDA; run the same command on a GPU machine.")
    return rows, ck


if __name__ == "__main__":
    main()
