"""Train several runs, loading those the store has finished: on the CPU one at a time here (two at once on 2 cores
slowed each by over 2x); on CUDA, which one run leaves mostly idle (docs/gpu.md), several at once as cluster jobs."""
from __future__ import annotations

import json
import os
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from . import runs as store
from .config import Config, ConfigError
from .data import DataError, data_identity
from .runs import CorruptRunError, Run, RunLockedError, StoreFullError

RUN_GPU_BYTES = 8 * 2**30  # GPU memory set aside per concurrent run by default (docs/gpu.md: how it was sized)
LOG_TAIL = 12              # lines of a failed run's log quoted in its error
LOCK_WAIT_S = 24 * 3600    # longest wait for a run another process trains, in seconds ($RUN_LOCK_WAIT overrides)
EXPECTED = (ConfigError, DataError, CorruptRunError, StoreFullError)


@dataclass
class Failure:
    """A run that failed: its label, config, one-line reason and the last lines of its log."""
    label: str
    config: dict
    message: str
    log_tail: list = field(default_factory=list)
    expected: bool = False


class SweepError(RuntimeError):
    """One or more runs failed (the others finished); `failures` lists each with its config and log."""

    def __init__(self, failures: list[Failure], total: int):
        self.failures = failures
        self.expected = all(f.expected for f in failures)  # bad config, missing data, corrupt run: the CLI exits 2
        lines = [f"{len(failures)} of {total} run(s) failed; the others finished:"]
        for f in failures:
            lines += [f"- {f.label} failed: {f.message}", f"  config: {json.dumps(f.config, sort_keys=True)}"]
            lines += [f"  | {t}" for t in f.log_tail]
        super().__init__("\n".join(lines))


def record_failure(failures: list, say, cfg: Config, rid: str | None, message: str, tail=(), expected=False, log=None):
    """Add a failure to `failures` and name it in the progress, with the last lines of its `log` if given."""
    label = run_label(cfg, rid)
    failures.append(Failure(label, cfg.to_dict(), message, list(tail), expected))
    say(f"{label} FAILED: {message}" + (f"\n{label} last lines of its log ({log}):" if log else ""))
    for t in tail if log else ():
        say(f"{label}   | {t}")


def run_label(cfg: Config, rid: str | None = None) -> str:
    """Return the prefix naming a run in progress lines: `[id recipe seed N]`."""
    return f"[{rid or '?' * 12} {cfg.recipe} seed {cfg.seed}]"


def load_done(rid: str, cfg: Config, root: Path, say, done: dict, failures: list, how: str):
    """Load a finished run into `done` and say how it came (loaded, finished) with its accuracies; or a failure."""
    try:
        run = done[rid] = store.load_run(root / rid)
        say(f"{run_label(cfg, rid)} {how}: final test acc {run.final_acc:.2f}%, best {run.best_acc:.2f}%")
    except CorruptRunError as e:
        record_failure(failures, say, cfg, rid, f"CorruptRunError: {e}", expected=True)


def config_run_id(cfg: Config, identities: dict) -> str:
    """Return a config's run id; `identities` caches data identities across calls (raises DataError if missing)."""
    key = (cfg.data_dir, cfg.train_size, cfg.test_size, cfg.seed)
    if key not in identities:
        identities[key] = data_identity(*key)
    return store.run_id(cfg.identity(), identities[key])


def resolve_jobs(jobs: int | None, pending: int, cuda: bool, free_bytes: int | None = None,
                 cpus: int | None = None) -> int:
    """Return runs at once: `jobs`, else $RUN_JOBS, else 1 on CPU, on CUDA all up to RUN_GPU_BYTES each and cores."""
    if jobs is None and (text := os.environ.get("RUN_JOBS", "").strip()):
        if not text.isdigit() or int(text) < 1:
            raise ConfigError(f"parameter 'RUN_JOBS' (environment) = {text!r} is invalid; valid: a positive integer")
        jobs = int(text)
    if jobs is None and cuda and pending > 1:
        import torch
        free = torch.cuda.mem_get_info()[0] if free_bytes is None else free_bytes
        jobs = max(1, min(pending, free // RUN_GPU_BYTES, (os.cpu_count() or 1) if cpus is None else cpus))
    jobs = 1 if jobs is None else jobs
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise ConfigError(f"parameter 'jobs' = {jobs!r} is invalid; valid: None or a positive integer")
    return jobs


def train_many(configs: list[Config], *, progress: bool = True, runs_dir=None, jobs: int | None = None,
               executor=None, wait: bool = True) -> list[Run] | None:
    """Return each config's run: loaded, resumed or trained, `jobs` at once or by `executor`; then SweepError."""
    from . import cluster
    from .train import resolve_device
    configs = list(configs)
    for c in configs:
        if not isinstance(c, Config):
            raise ConfigError(f"parameter 'configs' holds {c!r}; valid: a list of Config (make_config, with_seeds)")
    root = store.runs_root(runs_dir).resolve()
    executor = None if executor is None else cluster.resolve_executor(executor, root)
    say = (lambda text: print(text, flush=True)) if progress else (lambda text: None)
    failures, ids, first, done, pending, identities = [], [], {}, {}, [], {}
    for c in configs:
        try:
            if executor is None:  # on a cluster the device is the compute node's
                resolve_device(c.device)  # a run asking for absent CUDA fails here, named, before any work
            ids.append(config_run_id(c, identities))
            first.setdefault(ids[-1], c)
        except EXPECTED as e:
            record_failure(failures, say, c, None, f"{type(e).__name__}: {e}", expected=True)
            ids.append(None)
    for rid, c in first.items():
        if store.is_complete(root / rid):
            load_done(rid, c, root, say, done, failures, "loaded from the store")
        else:
            pending.append((rid, c))
    at_once = threads = None
    if executor is None and pending:
        cuda = any(resolve_device(c.device).type == "cuda" for _, c in pending)
        at_once = resolve_jobs(jobs, len(pending), cuda)
        if at_once > 1:
            # On CUDA the CPU only launches kernels: the runs share its cores. On the CPU each keeps the default
            # thread count: another sums in another order, and a history must not depend on where a run trains.
            threads = max(1, (os.cpu_count() or 1) // at_once) if cuda else None
            executor = cluster.local_executor(root, cuda)
    for rid, c in pending if executor is None else ():
        try:
            train_one(c, rid, root, say)
            load_done(rid, c, root, say, done, failures, "finished")
        except Exception as e:  # noqa: BLE001 - the other runs go on; the error names this one
            record_failure(failures, say, c, rid, f"{type(e).__name__}: {e}",
                           traceback.format_exc().strip().splitlines()[-LOG_TAIL:], isinstance(e, EXPECTED))
    if executor is not None and pending:
        cluster.run_jobs(pending, executor, root, say, done, failures, at_once, threads, wait)
    if failures:
        raise SweepError(failures, len(configs))
    return [done[rid] for rid in ids] if wait else None


def train_one(cfg: Config, rid: str, root, say) -> Run:
    """Return a run trained, resumed or loaded here; wait while another process holds it ($RUN_LOCK_WAIT)."""
    from .train import train_run
    label = run_label(cfg, rid)
    while True:
        try:
            return train_run(cfg, progress=False, runs_dir=root, on_epoch=lambda row: say(
                f"{label} epoch {int(row['epoch']):>3}/{cfg.epochs}  train acc {row['train_acc']:5.1f}%  "
                f"test acc {row['test_acc']:5.1f}%  {row['seconds']:.1f}s"))
        except RunLockedError:
            say(f"{label} is being trained by another process; waiting for it")
            store.wait_unlocked(Path(root) / rid, store.lock_wait_s() or LOCK_WAIT_S)
