"""Train several runs: one at a time in process on the CPU, several at once in worker processes on CUDA.

Two runs at once on a 2-core CPU slowed each by more than 2x, so the CPU trains one run at a time. On CUDA a
single run leaves the GPU mostly idle (the step is bound by kernel launches from Python; six runs at once
trained about 2.7x the images per second of one run alone, docs/gpu.md), so independent runs train
concurrently, each in its own process (helpers.sweep.worker). Runs already finished in the store are loaded,
never sent to a worker.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import queue
import subprocess
import sys
import threading
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from . import runs as store
from .config import Config, ConfigError
from .data import DataError, data_identity
from .runs import CorruptRunError, Run, RunLockedError, StoreFullError

RUN_GPU_BYTES = 8 * 2**30  # GPU memory set aside per concurrent run by default (docs/gpu.md: how it was sized)
LOG_TAIL = 12           # lines of a failed run's log quoted in its error
EPOCH_MARK = "@@epoch "  # prefix of the JSON line a worker prints after every epoch
LOCKED_EXIT = 75        # a worker's exit code when another live process holds the run's lock (EX_TEMPFAIL)
EXPECTED_EXIT = 2       # a worker's exit code for an expected failure (corrupt run, missing data, bad config)
EXPECTED = (ConfigError, DataError, CorruptRunError, StoreFullError)


class SweepError(RuntimeError):
    """One or more runs failed (the others finished); `failures` lists each with its config and log."""

    def __init__(self, failures: list[Failure], total: int):
        self.failures = failures
        lines = [f"{len(failures)} of {total} run(s) failed; the others finished:"]
        for f in failures:
            lines.append(f"- {f.label} failed: {f.message}")
            lines.append(f"  config: {json.dumps(f.config, sort_keys=True)}")
            lines += [f"  | {t}" for t in f.log_tail]
        super().__init__("\n".join(lines))

    @property
    def expected(self) -> bool:
        """Return whether every failure is an expected kind (bad config, missing data, corrupt run)."""
        return all(f.expected for f in self.failures)


@dataclass
class Failure:
    """A run that failed: its label, config, one-line reason and the last lines of its log."""
    label: str
    config: dict
    message: str
    log_tail: list = field(default_factory=list)
    expected: bool = False


def run_label(cfg: Config, rid: str | None = None) -> str:
    """Return the prefix naming a run in progress lines: `[id recipe seed N]`."""
    return f"[{rid or '?' * 12} {cfg.recipe} seed {cfg.seed}]"


def gpu_free_bytes() -> int:
    """Return the free memory of the current CUDA device, in bytes."""
    import torch
    return torch.cuda.mem_get_info()[0]


def gpu_jobs(pending: int, free_bytes: int | None = None, cpus: int | None = None) -> int:
    """Return how many runs one GPU trains at once by default: every pending run, as many as its free memory
    holds at RUN_GPU_BYTES each, and at most one per CPU core (each worker launches its kernels from Python)."""
    if pending <= 1:
        return 1
    free = gpu_free_bytes() if free_bytes is None else free_bytes
    cpus = (os.cpu_count() or 1) if cpus is None else cpus
    return max(1, min(pending, free // RUN_GPU_BYTES, cpus))


def resolve_jobs(jobs: int | None, pending: int, cuda: bool, free_bytes: int | None = None,
                 cpus: int | None = None) -> int:
    """Return how many runs train at once: `jobs`, else $RUN_JOBS, else gpu_jobs(...) on CUDA and 1 on CPU."""
    if jobs is None and os.environ.get("RUN_JOBS", "").strip():
        text = os.environ["RUN_JOBS"].strip()
        if not text.isdigit() or int(text) < 1:
            raise ConfigError(f"parameter 'RUN_JOBS' (environment) = {text!r} is invalid; valid: a positive integer")
        jobs = int(text)
    if jobs is None:
        jobs = gpu_jobs(pending, free_bytes, cpus) if cuda else 1
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise ConfigError(f"parameter 'jobs' = {jobs!r} is invalid; valid: None or a positive integer")
    return jobs


LOCK_WAIT_S = 24 * 3600  # longest wait for a run another process trains, in seconds ($RUN_LOCK_WAIT overrides)


def lock_wait_s() -> float:
    """Return how long a sweep waits for a run another process holds: $RUN_LOCK_WAIT, else LOCK_WAIT_S."""
    return store.lock_wait_s() or LOCK_WAIT_S


def _progress_line(label: str, row: dict, epochs: int) -> str:
    return (f"{label} epoch {int(row['epoch']):>3}/{epochs}  train acc {row['train_acc']:5.1f}%  "
            f"test acc {row['test_acc']:5.1f}%  {row['seconds']:.1f}s")


def _done_line(label: str, run: Run, how: str) -> str:
    return f"{label} {how}: final test acc {run.final_acc:.2f}%, best {run.best_acc:.2f}%"


def train_many(configs: list[Config], *, progress: bool = True, runs_dir=None, jobs: int | None = None,
               executor=None) -> list[Run]:
    """Return the finished run of every config, in order: loaded from the store, resumed or trained.

    `executor` ('slurm', 'local' or a submitit executor) sends one job per run instead (helpers.cluster).

    On the CPU one run trains at a time, in this process. On CUDA, or when `jobs` > 1 is asked for, runs train
    in `jobs` worker processes at once (default on CUDA: as many as free GPU memory and CPU cores allow, gpu_jobs;
    $RUN_JOBS overrides). Duplicate
    configs train once. A failing run is named in the progress; the others finish; then SweepError lists
    every failed run.
    """
    from .train import resolve_device
    if executor is not None:
        from .cluster import train_on_cluster
        return train_on_cluster(configs, executor, progress=progress, runs_dir=runs_dir)
    configs = list(configs)
    for c in configs:
        if not isinstance(c, Config):
            raise ConfigError(f"parameter 'configs' holds {c!r}; valid: a list of Config (make_config, with_seeds)")
    root = store.runs_root(runs_dir)
    say = (lambda text: print(text, flush=True)) if progress else (lambda text: None)
    ids, failures, first = [], [], {}  # first: run id -> its first config, in order
    idents = {}
    for c in configs:
        try:
            resolve_device(c.device)  # a run asking for absent CUDA fails here, named, before any work
            key = (c.data_dir, c.train_size, c.test_size, c.seed)
            if key not in idents:
                idents[key] = data_identity(*key)
            rid = store.run_id(c.identity(), idents[key])
        except EXPECTED as e:
            failures.append(Failure(run_label(c), c.to_dict(), f"{type(e).__name__}: {e}", expected=True))
            say(f"{run_label(c)} failed before training: {e}")
            ids.append(None)
            continue
        ids.append(rid)
        first.setdefault(rid, c)
    done: dict[str, Run] = {}
    pending = []
    for rid, c in first.items():
        if store.is_complete(root / rid):
            try:
                done[rid] = store.load_run(root / rid)
                say(_done_line(run_label(c, rid), done[rid], "loaded from the store"))
                continue
            except CorruptRunError as e:
                failures.append(Failure(run_label(c, rid), c.to_dict(), f"CorruptRunError: {e}", expected=True))
                continue
        pending.append((rid, c))
    cuda = any(resolve_device(c.device).type == "cuda" for _, c in pending)
    n_jobs = resolve_jobs(jobs, len(pending), cuda)
    if pending:
        if n_jobs == 1:
            _train_in_process(pending, root, say, done, failures)
        else:
            _train_in_workers(pending, root, n_jobs, cuda, say, done, failures)
    if failures:
        raise SweepError(failures, len(configs))
    return [done[rid] for rid in ids]


# ---- one at a time, in this process -----------------------------------------------------------

def _train_in_process(pending, root, say, done, failures):
    """Train each pending run here, one after another; record failures and go on."""
    from .train import train_run
    for rid, c in pending:
        label = run_label(c, rid)
        epochs = c.epochs
        on_epoch = (lambda row, label=label, epochs=epochs: say(_progress_line(label, row, epochs)))
        while True:
            try:
                run = train_run(c, progress=False, runs_dir=root, on_epoch=on_epoch)
                done[rid] = run
                say(_done_line(label, run, "finished"))
            except RunLockedError:
                say(f"{label} is being trained by another process; waiting for it")
                try:
                    store.wait_unlocked(root / rid, lock_wait_s())
                except RunLockedError as e:
                    failures.append(Failure(label, c.to_dict(), f"RunLockedError: {e}"))
                    say(f"{label} FAILED: RunLockedError: {e}")
                    break
                continue
            except Exception as e:  # noqa: BLE001 - the other runs go on; the error names this one
                tail = traceback.format_exc().strip().splitlines()[-LOG_TAIL:]
                failures.append(Failure(label, c.to_dict(), f"{type(e).__name__}: {e}", tail,
                                        expected=isinstance(e, EXPECTED)))
                say(f"{label} FAILED: {type(e).__name__}: {e}")
            break


# ---- several at once, in worker processes -------------------------------------------------------

@dataclass(eq=False)  # hashed by identity: jobs live in sets
class _Job:
    rid: str
    config: Config
    label: str
    proc: subprocess.Popen | None = None
    tail: collections.deque = field(default_factory=lambda: collections.deque(maxlen=LOG_TAIL))


def _worker_env(n_jobs: int, cuda: bool) -> dict:
    """Return the environment of a worker: this project importable; on CUDA, a share of the CPU threads."""
    env = dict(os.environ)
    project = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join([project] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    if cuda:
        # On CUDA the CPU only launches kernels, so workers share its cores. On the CPU every worker keeps
        # the default thread count: CPU kernels sum in another order with other thread counts, and a run
        # must give the same history whether it trains in a worker or in process.
        env.setdefault("RUN_THREADS", str(max(1, (os.cpu_count() or 1) // n_jobs)))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _start(job: _Job, root: Path, env: dict, events: queue.Queue):
    """Start the worker process of a job and a thread that forwards its output lines to `events`."""
    cmd = [sys.executable, "-c", "import sys; from helpers.sweep import worker; sys.exit(worker())",
           "--runs-dir", str(root), json.dumps(job.config.to_dict())]
    log = root / job.rid / "train.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    job.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                text=True, env=env, bufsize=1)
    threading.Thread(target=_pump, args=(job, log, events), daemon=True).start()


def _pump(job: _Job, log: Path, events: queue.Queue):
    """Copy a worker's output into its log and onto `events`; always end with one ("exit", job, (code, error)).

    An error here (the log cannot be written, or anything else) stops the worker, and the run fails naming it:
    the sweep never waits for an exit that will not come.
    """
    error = None
    try:
        with open(log, "a") as f:
            for line in job.proc.stdout:
                _forward(job, line, f, events)
    except BaseException as e:  # noqa: BLE001 - handed to the sweep with the exit
        error = f"could not write its log {log}: {type(e).__name__}: {e}" if isinstance(e, OSError) else \
            f"its log pump failed: {type(e).__name__}: {e}"
        job.proc.kill()
    finally:
        events.put(("exit", job, (job.proc.wait(), error)))


def _forward(job: _Job, line: str, f, events: queue.Queue):
    """Append one line of a worker's output to its log and send it to the sweep."""
    f.write(line)
    f.flush()
    events.put(("line", job, line.rstrip("\n")))


def _train_in_workers(pending, root, n_jobs, cuda, say, done, failures):
    """Train the pending runs in up to `n_jobs` worker processes at once; record failures and go on."""
    env = _worker_env(n_jobs, cuda)
    todo = collections.deque(_Job(rid, c, run_label(c, rid)) for rid, c in pending)
    events: queue.Queue = queue.Queue()
    running: set = set()
    waiting: set = set()  # jobs whose run another process holds; they come back as "retry" or "locked" events
    try:
        while todo or running or waiting:
            while todo and len(running) < n_jobs:
                job = todo.popleft()
                if store.is_complete(root / job.rid):  # another process finished it while this one waited
                    _load_finished(job, root, "loaded from the store", say, done, failures)
                    continue
                try:
                    _start(job, root, env, events)
                except OSError as e:
                    _fail(job, f"could not start its worker: {type(e).__name__}: {e}", root, say, failures)
                    continue
                running.add(job)
                say(f"{job.label} started (worker {job.proc.pid}, {len(running)} of {n_jobs} at once)")
            if not (running or waiting):
                continue  # every job left was loaded: nothing will come
            kind, job, value = events.get()
            if kind == "line":
                if value.startswith(EPOCH_MARK):
                    say(_progress_line(job.label, json.loads(value[len(EPOCH_MARK):]), job.config.epochs))
                else:
                    job.tail.append(value)
            elif kind == "exit":
                running.discard(job)
                _finish(job, *value, root, say, done, failures, waiting, events)
            elif kind == "retry":  # the other process let go of the run: load it, or train what it left
                waiting.discard(job)
                todo.appendleft(job)
            elif kind == "locked":  # the other process held it past the wait
                waiting.discard(job)
                _fail(job, f"RunLockedError: {value}", root, say, failures)
    finally:
        for job in running:
            if job.proc and job.proc.poll() is None:
                job.proc.kill()


def _load_finished(job, root, how, say, done, failures):
    """Load a job's finished run into `done`; a corrupt one is recorded as the job's failure."""
    try:
        done[job.rid] = store.load_run(root / job.rid)
    except CorruptRunError as e:
        _fail(job, f"CorruptRunError: {e}", root, say, failures, expected=True)
        return
    say(_done_line(job.label, done[job.rid], how))


def _fail(job, message, root, say, failures, expected=False):
    """Record a job's failure and name it, with the last lines of its log, in the progress."""
    failures.append(Failure(job.label, job.config.to_dict(), message, list(job.tail), expected=expected))
    say(f"{job.label} FAILED ({message}); last lines of its log ({root / job.rid / 'train.log'}):")
    for t in job.tail:
        say(f"{job.label}   | {t}")


def _finish(job, code, error, root, say, done, failures, waiting, events):
    """Record a worker's end: a finished run, a run locked by another process (wait, then retry), or a failure."""
    if error is not None:
        _fail(job, error, root, say, failures)
        return
    if code == 0 and store.is_complete(root / job.rid):
        _load_finished(job, root, "finished", say, done, failures)
        return
    if code == LOCKED_EXIT:
        say(f"{job.label} is being trained by another process; waiting for it")

        def wait():
            try:
                store.wait_unlocked(root / job.rid, lock_wait_s())
                events.put(("retry", job, None))
            except BaseException as e:  # noqa: BLE001 - never leave the job waiting forever
                events.put(("locked", job, e))
        threading.Thread(target=wait, daemon=True).start()
        waiting.add(job)
        return
    why = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
    last = next((t for t in reversed(job.tail) if t.strip()), "no output")
    _fail(job, f"worker {why}: {last}", root, say, failures, expected=code == EXPECTED_EXIT)


# ---- the worker ---------------------------------------------------------------------------------

def config_from_dict(d: dict) -> Config:
    """Return the Config of a `Config.to_dict()` (snapshot epochs back to a tuple)."""
    d = dict(d)
    d["snapshot_epochs"] = tuple(d["snapshot_epochs"])
    return Config(**d)


def worker(argv=None) -> int:
    """Train one run given as JSON; print one EPOCH_MARK line per epoch; return the exit code."""
    ap = argparse.ArgumentParser(prog="helpers.sweep.worker")
    ap.add_argument("--runs-dir", required=True)
    ap.add_argument("config", help="the run's Config.to_dict() as JSON")
    args = ap.parse_args(argv)
    import torch
    threads = os.environ.get("RUN_THREADS", "")
    if threads.isdigit() and int(threads) > 0:
        torch.set_num_threads(int(threads))
    from .train import train_run

    def emit(row):
        print(EPOCH_MARK + json.dumps({k: float(v) for k, v in row.items()}), flush=True)
    try:
        cfg = config_from_dict(json.loads(args.config))
        train_run(cfg, progress=False, runs_dir=args.runs_dir, on_epoch=emit)
    except RunLockedError as e:
        print(f"locked: {e}", flush=True)
        return LOCKED_EXIT
    except EXPECTED as e:
        print(f"error: {type(e).__name__}: {e}", flush=True)
        return EXPECTED_EXIT
    return 0

