"""Benchmarks, printed with their command, machine, data and date: images/s of training (bare step, this loop, the
report's DataLoader way; eager or CUDA graph) and evaluation per setting, and a checkpoint's cost (docs/performance.md).
`python -m helpers.tools.bench cluster` times submitit's overhead per run and estimates the study's wall time."""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from helpers.core import runs as store
from helpers.core.config import make_config
from helpers.core.data import load_cifar10
from helpers.core.models import build_model
from helpers.core.recipes import get_recipe
from helpers.core.step import EagerStep, StaticStep
from helpers.core.train import (EVAL_BATCH, evaluate, make_optimizer, make_scheduler, resolve_device, train_epoch,
                                train_run)

EVERY = dict(settings="fp32,fp32+cl,bf16,bf16+cl", recipes="crop,flip_rotate")  # --full
QUICK = {"cpu": dict(settings="fp32", recipes="crop", steps=2, images=256, workers="0"),
         "cuda": dict(settings="fp32,bf16+cl", recipes="crop", steps=50, images=5120, workers="4")}
FULL = {"cpu": dict(EVERY, steps=20, images=2560, workers="0,1,2"),
        "cuda": dict(EVERY, steps=200, images=25600, workers="0,4,8")}


def header(command: str, device, versions: str, data: str) -> str:
    """Return the lines naming a benchmark's command, machine (with `versions`), data and date."""
    return (f"command: {command}\nmachine: {device_name(device)}, {os.cpu_count()} cores, load average "
            f"{os.getloadavg()[0]:.1f}; Python {platform.python_version()}, {versions}; "
            f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC\ndata: {data}")


def device_name(device) -> str:
    """Return the GPU's name, or the CPU's model name where the system tells it."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        return next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "cpu"


def _model(device, channels_last):
    """Return the report's ResNet-18 on `device` (seeded, in the memory format asked for) and its SGD."""
    torch.manual_seed(0)
    m = build_model().to(device, memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    return m, torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)


def _timed(fn, n: int, device) -> float:
    """Return seconds per call of fn over n calls (after the caller's warm-up), waiting for CUDA's queued work."""
    sync = torch.cuda.synchronize if device.type == "cuda" else lambda: None
    sync()
    t = time.perf_counter()
    for _ in range(n):
        fn()
    sync()
    return (time.perf_counter() - t) / n


def bench_step(device, precision="fp32", channels_last=False, steps=20, batch=128, compile=False,
               graph=False) -> dict:
    """Return images/s of the bare training step on one pre-made batch: eager, compiled, or a CUDA graph."""
    model, opt = _model(device, channels_last)
    x = torch.rand(batch, 3, 32, 32, device=device)
    x = x.contiguous(memory_format=torch.channels_last) if channels_last else x
    y = torch.randint(0, 10, (batch,), device=device)
    crit = nn.CrossEntropyLoss()
    stepper = (StaticStep(model, opt, crit, batch, device, precision, channels_last) if graph
               else EagerStep(torch.compile(model) if compile else model, opt, crit, device, precision))
    n_warm = 5 if graph else 1 if device.type == "cpu" else 3  # a graph warms up, captures, replays
    warm = n_warm * _timed(lambda: stepper.step(x, y), n_warm, device)
    return {"images_per_s": batch / _timed(lambda: stepper.step(x, y), steps, device), "warmup_s": warm}


def bench_loop(device, data, recipe, precision="fp32", channels_last=False, images=2560, graph=False) -> dict:
    """Return images/s of this project's training epoch (eager or graph) and of evaluation."""
    cfg = make_config(profile="full", recipe=recipe, precision=precision, channels_last=channels_last,
                      device=device.type)
    model = _model(device, channels_last)[0]
    opt = make_optimizer(model, cfg)
    sched, per_step = make_scheduler(opt, cfg, 100)
    x, y = data.train_x[:images].to(device), data.train_y[:images].to(device)
    g = torch.Generator(device=device if device.type == "cuda" else "cpu").manual_seed(0)
    crit, rec = nn.CrossEntropyLoss(), get_recipe(recipe)
    stepper = (StaticStep(model, opt, crit, cfg.batch_size, device, precision, channels_last) if graph
               else EagerStep(model, opt, crit, device, precision))
    epoch = lambda n: train_epoch(stepper, sched, per_step, x[:n], y[:n], rec, cfg, g)  # noqa: E731
    epoch(cfg.batch_size * (5 if graph else 1))  # warm-up (with a graph: its warm-up steps and the capture)
    train_ips = images / _timed(lambda: epoch(images), 1, device)
    n_eval = min(len(data.test_x), 10_000 if device.type == "cuda" else 500)
    tx, ty = data.test_x[:n_eval].to(device), data.test_y[:n_eval].to(device)
    kw = dict(precision=precision, channels_last=channels_last, batch_size=EVAL_BATCH[device.type])
    warm = kw["batch_size"] if device.type == "cuda" else 100
    evaluate(model, tx[:warm], ty[:warm], recipe, **kw)
    eval_s = _timed(lambda: evaluate(model, tx, ty, recipe, **kw), 1, device)
    return {"images_per_s": train_ips, "eval_images_per_s": n_eval / eval_s}


class _ReportStyleDataset(torch.utils.data.Dataset):
    """CIFAR-10 the way torchvision.datasets.CIFAR10 serves it: HWC uint8 -> PIL -> transform."""

    def __init__(self, x_uint8, y, transform):
        self.data, self.targets, self.transform = x_uint8.permute(0, 2, 3, 1).numpy(), y.tolist(), transform

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
        stepper = EagerStep(*_model(device, channels_last), nn.CrossEntropyLoss(), device, precision)
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        loader = torch.utils.data.DataLoader(ds, batch_size=128, shuffle=True, num_workers=w,
                                             persistent_workers=w > 0, pin_memory=device.type == "cuda")

        def one_pass(first_batch_only=False):
            """Train on the loader's batches (only the first: the warm-up of workers and kernels)."""
            for xb, yb in loader:
                stepper.step(xb.to(device, non_blocking=True, memory_format=fmt),
                             yb.to(device, non_blocking=True))
                if first_batch_only:
                    return
        _timed(lambda: one_pass(True), 1, device)
        ips = len(ds) / _timed(one_pass, 1, device)
        if ips > best.get("images_per_s", 0):
            best = {"images_per_s": ips, "num_workers": w}
    return best


def bench_checkpoint(device) -> dict:
    """Return what a per-epoch last.pt (ResNet-18, 60 epochs of history) costs: size, synchronous save, CPU snapshot."""
    cfg = make_config(profile="full", recipe="fast", device=device.type)  # OneCycle: the largest scheduler state
    model = _model(device, False)[0]
    opt = make_optimizer(model, cfg)
    sched, _ = make_scheduler(opt, cfg, 391)
    for p in model.parameters():  # momentum buffers exist after the first step
        opt.state[p]["momentum_buffer"] = torch.zeros_like(p)
    history = [{"epoch": e, "lr": 0.1, "train_loss": 1.0, "train_acc": 50.0, "test_loss": 1.0, "test_acc": 50.0,
                "seconds": 1.0} for e in range(1, 61)]
    state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
             "epoch": 60, "history": history, "rng": torch.get_rng_state()}
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "last.pt"
        sync_s = _timed(lambda: store.save_checkpoint(state, path), 1, device)
        snap_s = _timed(lambda: store.cpu_snapshot(state), 1, device)
        return {"megabytes": path.stat().st_size / 1e6, "sync_s": sync_s, "snapshot_s": snap_s}


def main(argv=None):
    """Run the benchmark; return its rows (one dict per setting) and the checkpoint figures."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["cluster"]:
        return cluster_bench(argv[1:])
    ap = argparse.ArgumentParser(prog="python -m helpers.tools.bench", description=__doc__)
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--data-dir", default=os.environ.get("CIFAR10_DIR") or "synthetic",
                    help="data for loop/report: a CIFAR-10 folder, or 'synthetic' (default without $CIFAR10_DIR)")
    for name, kind, text in (("images", int, "images per timed loop/report pass (default: by device and --full)"),
                             ("steps", int, "timed steps of the bare step"), ("threads", int, "torch.set_num_threads"),
                             ("settings", str, "comma list of fp32 | bf16, each optionally +cl (channels_last)"),
                             ("recipes", str, "comma list of recipes for the loop and report columns"),
                             ("workers", str, "comma list of DataLoader num_workers for the report column (best)")):
        ap.add_argument(f"--{name}", type=kind, help=text)
    for flag, text in (("full", "the long sweep: every setting, two recipes, more steps, torch.compile"),
                       ("compile", "also time torch.compile on the bare step"),
                       ("no-checkpoint", "skip the checkpoint cost")):
        ap.add_argument(f"--{flag}", action="store_true", help=text)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    opt = {k: getattr(args, k) if getattr(args, k) is not None else v
           for k, v in (FULL if args.full else QUICK)[device.type].items()}
    data = load_cifar10(args.data_dir, train_size=max(opt["images"], 1280) // 10 * 10 + 10,
                        test_size=10_000 if cuda and args.data_dir != "synthetic" else 2000)
    print(header(shlex.join(["python", "-m", "helpers.tools.bench", *argv]), device,
                 f"torch {torch.__version__}, {device.type}, {torch.get_num_threads()} threads",
                 f"{data.source} ({Path(args.data_dir).name}), batch 128, {opt['images']} images per timed pass, "
                 f"{opt['steps']} timed bare steps") + "\nfigures: images/s of training (eval: of evaluation); "
          "higher is better\n", flush=True)
    recipes = opt["recipes"].split(",")
    cols = ["setting", "step eager", "step graph", *[f"{c} {r}" for r in recipes
                                                     for c in ("loop eager", "loop graph", "report")], "eval"]
    print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols), flush=True)
    rows = []
    for s in opt["settings"].split(","):
        precision, cl = s.split("+")[0], s.endswith("+cl")
        row = {"setting": s, "step eager": bench_step(device, precision, cl, opt["steps"])["images_per_s"],
               "step graph": bench_step(device, precision, cl, opt["steps"], graph=True)["images_per_s"]
               if cuda else "needs CUDA"}
        for r in recipes:
            b = bench_loop(device, data, r, precision, cl, opt["images"])
            row[f"loop eager {r}"], row["eval"] = b["images_per_s"], b["eval_images_per_s"]
            row[f"loop graph {r}"] = (bench_loop(device, data, r, precision, cl, opt["images"], graph=True)
                                      ["images_per_s"] if cuda else "needs CUDA")
            c = bench_report_style(device, data, r, precision, cl, [int(w) for w in str(opt["workers"]).split(",")],
                                   opt["images"])
            row[f"report {r}"] = f"{c['images_per_s']:,.0f} (w={c['num_workers']})"
        rows.append(row)
        print("| " + " | ".join(f"{row[c]:,.0f}" if isinstance(row[c], float) else str(row[c]) for c in cols) + " |",
              flush=True)
    if args.compile or args.full:
        c = bench_step(device, "fp32", False, opt["steps"], compile=True)
        print(f"\ntorch.compile fp32 bare step: {c['images_per_s']:,.0f} img/s; first steps incl. compile "
              f"{c['warmup_s']:.1f} s")
    ck = None if args.no_checkpoint else bench_checkpoint(device)
    if ck:
        print(f"\ncheckpoint (last.pt of ResNet-18 + SGD momentum + OneCycle + 60-epoch history, with SHA-256, "
              f"{ck['megabytes']:.0f} MB): written synchronously {ck['sync_s']:.2f} s per epoch; "
              f"in the background the training thread waits only for the CPU snapshot, {ck['snapshot_s']:.3f} s "
              f"(plus any unfinished write of the previous epoch)")
    if not cuda:
        print("\nstep graph / loop graph: a captured CUDA graph needs CUDA; run the same command on a GPU machine.")
    return rows, ck


def reference_seconds_per_epoch(folder=None) -> tuple[float, int]:
    """Return (median seconds per epoch, runs) of the full profile's 60-epoch reference runs (all 50,000 images)."""
    from .reference import REFERENCE_DIR
    folder = Path(folder or REFERENCE_DIR / "full")
    runs = store.records(folder).query("epochs == 60 and train_images == 50000 and eval_set == 'test'")
    if runs.empty:
        raise FileNotFoundError(f"no 60-epoch full-profile runs under {folder}")
    return float(statistics.median(pd.read_csv(folder / f / "history.csv")["seconds"].sum() / 60
                                   for f in runs["folder"])), len(runs)


def wall_seconds(run_seconds: list, gpus: int) -> float:
    """Return the wall time of runs on `gpus` GPUs, one run per GPU at a time, longest first."""
    free = [0.0] * gpus
    for s in sorted(run_seconds, reverse=True):
        free[free.index(min(free))] += s
    return max(free)


def cluster_bench(argv=None) -> dict:
    """Print submitit's measured overhead per run and the study's estimated wall time on N GPUs; return the figures."""
    import submitit
    from .cli import study_configs
    from helpers.core.cluster import ClusterSettings, TrainTask, make_executor
    ap = argparse.ArgumentParser(prog="python -m helpers.tools.bench cluster", description=cluster_bench.__doc__)
    ap.add_argument("--jobs", type=int, default=5, help="local jobs to time, one after another")
    ap.add_argument("--seeds", type=int, default=3, help="seeds of the study to estimate")
    args = ap.parse_args(argv)
    cfg = make_config(profile="smoke", train_size=100, test_size=20, epochs=1, batch_size=50)
    cpu = torch.device("cpu")
    with tempfile.TemporaryDirectory() as tmp:
        rid = train_run(cfg, progress=False, runs_dir=tmp).id
        ex = make_executor(ClusterSettings(kind="local", gpus_per_task=0), Path(tmp))
        times = [_timed(lambda: ex.submit(TrainTask(cfg, rid, tmp)).result(), 1, cpu) for _ in range(args.jobs)]
    overhead = statistics.median(times)
    import_s = _timed(lambda: subprocess.run([sys.executable, "-c", "import helpers"], check=True), 1, cpu)
    per_epoch, n_ref = reference_seconds_per_epoch()
    configs = study_configs("full", args.seeds)
    run_s = [per_epoch * c.epochs * ((c.train_size or 50_000) - c.validation) / 50_000 + overhead for c in configs]
    print(header(f"python -m helpers.tools.bench cluster --jobs {args.jobs} --seeds {args.seeds}", cpu,
                 f"submitit {submitit.__version__}", "a finished 1-epoch smoke run (synthetic images) in a temporary "
                 "run store; each job loads it"))
    print(f"submitit local executor, {args.jobs} jobs one after another: median {overhead:.1f} s per run "
          f"(min {min(times):.1f}, max {max(times):.1f}): submit, a fresh Python importing helpers, the task, "
          f"the result; a fresh Python importing helpers alone: {import_s:.1f} s")
    print(f"\nestimate: the full study, {len(configs)} runs ({args.seeds} seeds), at {per_epoch:.2f} s per epoch of "
          f"50,000 images (median of the {n_ref} 60-epoch runs in report/reference/full, several at once on one GPU), "
          f"plus {overhead:.1f} s per run; queue waits not included\n| GPUs | wall time |\n|---|---|")
    table = {gpus: wall_seconds(run_s, gpus) for gpus in sorted({1, 2, 4, 8, 16, len(configs)})}
    for gpus, seconds in table.items():
        print(f"| {gpus} | {seconds / 60:.0f} min |")
    return {"overhead_s": overhead, "times": times, "wall_s": table}


if __name__ == "__main__":
    main()
