"""`python -m helpers.cluster bench`: submitit's overhead per run, measured with the local executor, and the full
study's wall time on N GPUs estimated from the full reference runs' seconds per epoch.

It is a benchmark, not a test: it prints its command, data and machine with its figures.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import submitit

from . import runs as store
from .cluster import ClusterSettings, TrainTask, make_executor, study_configs


def reference_seconds_per_epoch(folder=None) -> tuple[float, int]:
    """Return (median seconds per epoch, runs) of the full profile's 60-epoch reference runs (all 50,000 images)."""
    import pandas as pd
    from .reference import REFERENCE_DIR
    folder = Path(folder or Path(REFERENCE_DIR) / "full")
    per_epoch = []
    for history in sorted(folder.glob("*/history.csv")):
        config = store.read_json(history.parent / store.RECORD)["config"]
        if config["epochs"] == 60 and not config.get("validation") and config.get("train_size") is None:
            per_epoch.append(pd.read_csv(history)["seconds"].sum() / config["epochs"])
    if not per_epoch:
        raise FileNotFoundError(f"no 60-epoch full-profile runs under {folder}")
    return float(pd.Series(per_epoch).median()), len(per_epoch)


def wall_seconds(run_seconds: list, gpus: int) -> float:
    """Return the wall time of runs on `gpus` GPUs, one run per GPU at a time, longest first."""
    free = [0.0] * gpus
    for s in sorted(run_seconds, reverse=True):
        free[free.index(min(free))] += s
    return max(free)


def measure_overhead(jobs: int, folder: Path) -> list:
    """Return the seconds of `jobs` local-executor jobs, one after another, each loading one finished run."""
    from .config import make_config
    from .train import train_run
    cfg = make_config(profile="smoke", train_size=100, test_size=20, epochs=1, batch_size=50)
    train_run(cfg, progress=False, runs_dir=folder / "runs")
    ex = make_executor(ClusterSettings(kind="local", gpus_per_task=0), folder / "runs")
    times = []
    for _ in range(jobs):
        t0 = time.perf_counter()
        ex.submit(TrainTask(cfg.to_dict(), str(folder / "runs"))).result()
        times.append(time.perf_counter() - t0)
    return times


def bench(argv=None) -> dict:
    """Print submitit's measured overhead per run and the study's estimated wall time on N GPUs; return the figures."""
    import argparse
    import datetime as dt
    import platform
    import statistics
    import tempfile

    import torch
    from .bench import _device_name
    ap = argparse.ArgumentParser(prog="python -m helpers.cluster bench", description=bench.__doc__)
    ap.add_argument("--jobs", type=int, default=5, help="local jobs to time, one after another")
    ap.add_argument("--seeds", type=int, default=3, help="seeds of the study to estimate")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        times = measure_overhead(args.jobs, Path(tmp))
    overhead = statistics.median(times)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import helpers"], check=True)
    import_s = time.perf_counter() - t0
    per_epoch, n_ref = reference_seconds_per_epoch()
    configs = study_configs("full", args.seeds)
    run_s = [per_epoch * c.epochs * ((c.train_size or 50_000) - c.validation) / 50_000 + overhead for c in configs]
    print(f"command: python -m helpers.cluster bench --jobs {args.jobs} --seeds {args.seeds}")
    print(f"machine: {_device_name(torch.device('cpu'))}, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f}; Python {platform.python_version()}, submitit {submitit.__version__}; "
          f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC")
    print("data: a finished 1-epoch smoke run (synthetic images) in a temporary run store; each job loads it")
    print(f"submitit local executor, {args.jobs} jobs one after another: median {overhead:.1f} s per run "
          f"(min {min(times):.1f}, max {max(times):.1f}): submit, a fresh Python importing helpers, the task, "
          f"the result; a fresh Python importing helpers alone: {import_s:.1f} s")
    print(f"\nestimate: the full study, {len(configs)} runs ({args.seeds} seeds), at {per_epoch:.2f} s per epoch of "
          f"50,000 images (median of the {n_ref} 60-epoch runs in report/reference/full, several at once on one GPU), "
          f"plus {overhead:.1f} s per run; queue waits not included")
    print("| GPUs | wall time |\n|---|---|")
    table = {}
    for gpus in sorted({1, 2, 4, 8, 16, len(configs)}):
        table[gpus] = wall_seconds(run_s, gpus)
        print(f"| {gpus} | {table[gpus] / 60:.0f} min |")
    return {"overhead_s": overhead, "times": times, "wall_s": table}


def main(argv=None) -> int:
    """Run `bench` when asked for; return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] != ["bench"]:
        print("usage: python -m helpers.cluster bench [--jobs N] [--seeds N]", file=sys.stderr)
        return 2
    bench(argv[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
