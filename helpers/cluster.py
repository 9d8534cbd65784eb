"""Train runs on a Slurm cluster through submitit: one job per run, into the shared run store.

`train_many(configs, executor=...)` and `python -m helpers.cli train ... --cluster slurm|local` come here.
Runs already finished in the store are loaded and never sent; configs with the same run id are sent once.
Each task trains exactly one run (TrainTask) and returns its summary; the submitting process then loads
every run from the store. A task that reaches its time limit or is preempted gets submitit's signal, is
requeued (TrainTask is a submitit Checkpointable) and resumes from the run's last.pt.

One task owns one run id, so no lock across hosts is needed: see docs/cluster.md.
`python -m helpers.cluster bench` (helpers.cluster_bench) measures submitit's overhead per run.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import submitit

from . import runs as store
from .config import Config, ConfigError
from .data import data_identity
from .sweep import EXPECTED, LOG_TAIL, Failure, SweepError, _done_line, _progress_line, config_from_dict, run_label

KINDS = ("slurm", "local")
JOB_FILE = "job.json"  # in a run folder: the cluster and id of the job a submission sent the run to
NODE_LOCAL = ("/tmp", "/var/tmp", "/dev/shm", "/run")  # folders a compute node does not share with the login node


@dataclasses.dataclass(frozen=True)
class ClusterSettings:
    """What every task asks the scheduler for; defaults come from $CLUSTER_* (see from_env)."""
    kind: str = "slurm"
    partition: str | None = None     # $CLUSTER_PARTITION; None: the cluster's default partition
    account: str | None = None       # $CLUSTER_ACCOUNT; None: the user's default account
    gpus_per_task: int = 1           # $CLUSTER_GPUS_PER_TASK
    cpus_per_task: int = 8           # $CLUSTER_CPUS_PER_TASK; the task's torch threads follow it
    time_min: int = 120              # $CLUSTER_TIME_MIN; a longer run is requeued and resumes
    array_parallelism: int = 32      # $CLUSTER_ARRAY_PARALLELISM: most tasks running at once
    max_requeues: int = 10           # $CLUSTER_MAX_REQUEUES: time-outs allowed per task (preemptions are free)
    log_dir: str | None = None       # $CLUSTER_LOG_DIR; None: <run store>/.submitit

    @classmethod
    def from_env(cls, environ=None, **overrides) -> ClusterSettings:
        """Return the settings: each override that is not None, else $CLUSTER_<NAME>, else the default."""
        environ = os.environ if environ is None else environ
        values = {}
        for f in dataclasses.fields(cls):
            given = overrides.pop(f.name, None)
            where = "parameter 'cluster'" if f.name == "kind" else f"parameter {f.name!r}"
            env = f"CLUSTER_{f.name.upper()}"
            if given is None and f.name != "kind" and environ.get(env, "").strip():
                given, where = environ[env].strip(), f"parameter {env!r} (environment)"
            if given is not None:
                values[f.name] = _checked(f, given, where)
        if overrides:
            raise ConfigError(f"unknown cluster parameter(s) {sorted(overrides)}; "
                              f"valid: {[f.name for f in dataclasses.fields(cls)]}")
        return cls(**values)


# The command line's options for the settings (python -m helpers.cli train --cluster KIND --time-min 240 ...).
SETTING_OPTIONS = {
    "partition": "Slurm partition (default $CLUSTER_PARTITION, else the cluster's default)",
    "account": "Slurm account to charge (default $CLUSTER_ACCOUNT, else yours)",
    "gpus_per_task": "GPUs per run (default $CLUSTER_GPUS_PER_TASK, else 1)",
    "cpus_per_task": "CPU cores per run; torch threads follow (default $CLUSTER_CPUS_PER_TASK, else 8)",
    "time_min": "time limit per job in minutes; a run past it is requeued (default $CLUSTER_TIME_MIN, else 120)",
    "array_parallelism": "most runs at once (default $CLUSTER_ARRAY_PARALLELISM, else 32)",
    "max_requeues": "time-outs allowed per run (default $CLUSTER_MAX_REQUEUES, else 10)",
    "log_dir": "submitit's job files and logs (default $CLUSTER_LOG_DIR, else <run store>/.submitit)",
}


def _checked(f: dataclasses.Field, value, where: str):
    """Return a setting's value in its type; raise ConfigError naming it, the value and the valid choices."""
    if f.name == "kind":
        if value not in KINDS:
            raise ConfigError(f"{where} = {value!r} is invalid; valid: {' | '.join(KINDS)}")
        return value
    if f.default is None or isinstance(f.default, str):
        text = str(value).strip()
        if not text:
            raise ConfigError(f"{where} = {value!r} is invalid; valid: a non-empty name")
        return text
    low = 0 if f.name in ("gpus_per_task", "max_requeues") else 1
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit() or int(text) < low:
        kind = "a non-negative integer" if low == 0 else "a positive integer"
        raise ConfigError(f"{where} = {value!r} is invalid; valid: {kind}")
    return int(text)


def node_local_reason(path) -> str | None:
    """Return why `path` is not seen by every node (a temporary or memory-backed folder), or None."""
    p = Path(path).expanduser().resolve()
    for prefix in NODE_LOCAL:
        if p == Path(prefix) or Path(prefix) in p.parents:
            return f"it is under {prefix}, and every node has its own {prefix}"
    try:
        mounts = [line.split() for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return None
    best = max((m for m in mounts if len(m) > 2 and (p == Path(m[1]) or Path(m[1]) in p.parents)),
               key=lambda m: len(m[1]), default=None)
    if best is not None and best[2] in ("tmpfs", "ramfs"):
        return f"it is on a {best[2]} (memory of one node) mounted at {best[1]}"
    return None


def check_can_submit(settings: ClusterSettings, root: Path):
    """Raise ConfigError, before anything is submitted, if Slurm is absent or the store is node-local."""
    if settings.kind != "slurm":
        return
    missing = next((c for c in ("sbatch", "srun") if shutil.which(c) is None), None)
    if missing:
        raise ConfigError(f"parameter 'cluster' = 'slurm' is invalid here: no `{missing}` on PATH (not a Slurm "
                          "login node); valid: run it on a login node of a Slurm cluster, or --cluster local")
    for name, folder in (("RUNS_DIR", root), ("CLUSTER_LOG_DIR", log_folder(settings, root))):
        why = node_local_reason(folder)
        if why:
            raise ConfigError(f"parameter {name!r} = '{folder}' is invalid for --cluster slurm: {why}; "
                              "valid: a folder on storage every node mounts (home, project or scratch space)")


def log_folder(settings: ClusterSettings, root: Path) -> Path:
    """Return the folder of submitit's job files and logs."""
    return Path(settings.log_dir) if settings.log_dir else Path(root) / ".submitit"


def make_executor(settings: ClusterSettings, root: Path):
    """Return a submitit executor for the settings: Slurm, or local subprocesses through the same code."""
    kind = settings.kind
    ex = submitit.AutoExecutor(folder=log_folder(settings, root) / "%j", cluster=kind,
                               **{f"{kind}_max_num_timeout": settings.max_requeues})
    params = dict(name="helpers-run", timeout_min=settings.time_min, nodes=1, tasks_per_node=1,
                  cpus_per_task=settings.cpus_per_task, gpus_per_node=settings.gpus_per_task)
    if kind == "slurm":
        params.update(slurm_array_parallelism=settings.array_parallelism,
                      **{f"slurm_{k}": getattr(settings, k) for k in ("partition", "account") if getattr(settings, k)})
    ex.update_parameters(**params)
    return ex


# ---- the task: one run ----------------------------------------------------------------------------

class TrainTask(submitit.helpers.Checkpointable):
    """Train one run into the run store and return its summary; requeued on time-out or preemption.

    Torch threads: $RUN_THREADS if set, else the task's CPUs ($SLURM_CPUS_PER_TASK), else torch's default.
    """

    def __init__(self, config: dict, runs_dir: str):
        self.config = config
        self.runs_dir = str(runs_dir)

    def __call__(self) -> dict:
        """Train (or resume, or load) the run; print one progress line per epoch; return its summary."""
        import torch
        from .train import train_run
        threads = os.environ.get("RUN_THREADS") or os.environ.get("SLURM_CPUS_PER_TASK", "")
        if threads.isdigit() and int(threads) > 0:
            torch.set_num_threads(int(threads))
        cfg = config_from_dict(self.config)
        label = run_label(cfg, self._run_id())
        print(f"{label} training on {socket.gethostname()} (pid {os.getpid()}, {torch.get_num_threads()} threads)",
              flush=True)
        run = train_run(cfg, progress=False, runs_dir=self.runs_dir,
                        on_epoch=lambda row: print(_progress_line(label, row, cfg.epochs), flush=True))
        print(_done_line(label, run, "finished"), flush=True)
        return summary(run)

    def checkpoint(self, *args, **kwargs) -> submitit.helpers.DelayedSubmission:
        """Requeue the same task: the run store's last.pt is the checkpoint, and train_run resumes from it."""
        rid = self._run_id()
        history = Path(self.runs_dir) / rid / "history.csv"  # written after last.pt: never ahead of it
        epochs = max(0, len(history.read_text().splitlines()) - 1) if history.exists() else 0
        print(f"{run_label(config_from_dict(self.config), rid)} interrupted after epoch {epochs}; requeued, "
              "it resumes from last.pt", flush=True)
        return super().checkpoint(*args, **kwargs)

    def _run_id(self) -> str:
        """Return the run id of this task's config."""
        c = config_from_dict(self.config)
        return store.run_id(c.identity(), data_identity(c.data_dir, c.train_size, c.test_size, c.seed))


def summary(run: store.Run) -> dict:
    """Return the small summary a task sends back: id, setting, accuracies, minutes and host."""
    c = run.config
    return {"run": run.id, "recipe": c["recipe"], "seed": c["seed"], "epochs": c["epochs"],
            "final_test_acc": run.final_acc, "best_test_acc": run.best_acc,
            "minutes": float(run.history["seconds"].sum() / 60), "host": socket.gethostname()}


# ---- the submitting side ----------------------------------------------------------------------------

def plan(configs: list[Config], root: Path):
    """Return (ids, first, done): every config's run id, the first config of each id, the finished runs."""
    ids, first, idents = [], {}, {}
    for c in configs:
        if not isinstance(c, Config):
            raise ConfigError(f"parameter 'configs' holds {c!r}; valid: a list of Config (make_config, with_seeds)")
        key = (c.data_dir, c.train_size, c.test_size, c.seed)
        if key not in idents:
            idents[key] = data_identity(*key)  # missing data fails here, before anything is submitted
        rid = store.run_id(c.identity(), idents[key])
        ids.append(rid)
        first.setdefault(rid, c)
    done = {}
    for rid in (r for r in first if store.is_complete(root / r)):
        try:
            done[rid] = store.load_run(root / rid)
        except store.CorruptRunError as e:  # named, before anything is submitted
            raise SweepError([Failure(run_label(first[rid], rid), first[rid].to_dict(), f"CorruptRunError: {e}",
                                      expected=True)], len(configs)) from None
    return ids, first, done


def submit(pending: list, executor, root: Path) -> list:
    """Submit one TrainTask per (run id, config), as one array where the executor supports it; return the jobs.

    Each run folder records its job (JOB_FILE), so that a later submission does not send it again meanwhile.
    """
    with executor.batch():
        jobs = [executor.submit(TrainTask(c.to_dict(), str(root))) for _, c in pending]
    kind = getattr(executor, "cluster", None) or ("slurm" if "Slurm" in type(executor).__name__ else "local")
    for job, (rid, _) in zip(jobs, pending):
        store.atomic_write_json(root / rid / JOB_FILE, {"cluster": kind, "job_id": job.job_id})
    return jobs


def live_job(path: Path) -> str | None:
    """Return the id of the job an earlier submission sent the run in `path` to, if it is still queued or running."""
    try:
        job = store.read_json(Path(path) / JOB_FILE)
    except (FileNotFoundError, store.CorruptRunError):
        return None
    jid = str(job.get("job_id"))
    if job.get("cluster") == "slurm":
        out = subprocess.run(["squeue", "-h", "-o", "%i", "-j", jid], capture_output=True, text=True) \
            if shutil.which("squeue") else None
        return jid if out is not None and out.returncode == 0 and out.stdout.strip() else None
    try:
        os.kill(int(jid), 0)  # a local job: its controller process, on this machine
    except (ValueError, ProcessLookupError):
        return None
    except PermissionError:
        pass
    return jid


def resolve_executor(executor, root: Path):
    """Return a submitit executor: the one given, or one made from a kind name ('slurm' | 'local') and $CLUSTER_*."""
    if isinstance(executor, str):
        settings = ClusterSettings.from_env(kind=executor)
        check_can_submit(settings, root)
        return make_executor(settings, root)
    if not isinstance(executor, submitit.Executor):
        raise ConfigError(f"parameter 'executor' = {executor!r} is invalid; valid: None, 'slurm', 'local' "
                          "or a submitit executor")
    return executor


def train_on_cluster(configs, executor, *, progress: bool = True, runs_dir=None, poll_s: float | None = None,
                     wait: bool = True) -> list:
    """Return the finished run of every config, in order: loaded from the store, or trained by one job each.

    A failing job is named with the tail of its log; the others finish; then SweepError lists every failure.
    `wait=False` returns the submitted jobs instead, once they are submitted.
    """
    root = store.runs_root(runs_dir).resolve()
    executor = resolve_executor(executor, root)
    say = (lambda text: print(text, flush=True)) if progress else (lambda text: None)
    ids, first, done = plan(list(configs), root)
    for rid in done:
        say(_done_line(run_label(first[rid], rid), done[rid], "loaded from the store"))
    pending = [(rid, c) for rid, c in first.items() if rid not in done]
    elsewhere = {rid: jid for rid, _ in pending if (jid := live_job(root / rid))}
    for rid, jid in elsewhere.items():
        say(f"{run_label(first[rid], rid)} is already queued or running as job {jid}; not sent again")
    pending = [(rid, c) for rid, c in pending if rid not in elsewhere]
    jobs = submit(pending, executor, root) if pending else []
    if jobs:
        say(f"submitted {len(jobs)} run(s) through submitit; job files and logs in {_shown_folder(executor)}")
    for job, (rid, c) in zip(jobs, pending):
        say(f"{run_label(c, rid)} submitted as job {job.job_id}")
    if not wait:
        return jobs
    failures, by_job = [], {job.job_id: (rid, c) for job, (rid, c) in zip(jobs, pending)}
    poll = poll_s if poll_s is not None else (0.2 if getattr(executor, "cluster", "local") != "slurm" else 30)
    for job in submitit.helpers.as_completed(jobs, poll_frequency=poll):
        _collect(job, *by_job[job.job_id], root, say, done, failures)
    for rid, jid in elsewhere.items():
        _await_elsewhere(rid, first[rid], jid, root, poll, say, done, failures)
    if failures:
        raise SweepError(failures, len(ids))
    return [done[rid] for rid in ids]


def _collect(job, rid, cfg, root, say, done, failures):
    """Record a finished job: its run, loaded from the store; or a failure named with its log's tail."""
    label = run_label(cfg, rid)
    error = job.exception()
    if error is None and store.is_complete(root / rid):
        done[rid] = store.load_run(root / rid)
        say(_done_line(label, done[rid], f"finished (job {job.job_id}, {job.result()['host']})"))
        return
    tail = log_tail(job)
    last = next((t for t in reversed(tail) if t.strip()), str(error).strip().splitlines()[-1] if error else "no output")
    expected = any(f"{e.__name__}:" in last for e in EXPECTED)
    failures.append(Failure(label, cfg.to_dict(), f"job {job.job_id} failed: {last}", tail, expected=expected))
    say(f"{label} FAILED (job {job.job_id}); last lines of its log ({job.paths.stderr}):")
    for t in tail:
        say(f"{label}   | {t}")


def _shown_folder(executor) -> Path:
    """Return the executor's log folder without submitit's per-job `%j` part."""
    folder = Path(executor.folder)
    return folder.parent if "%j" in folder.name else folder


def _await_elsewhere(rid, cfg, jid, root, poll, say, done, failures):
    """Wait for a run an earlier submission's job trains: load it when finished, or record that the job ended."""
    label = run_label(cfg, rid)
    while not store.is_complete(root / rid):
        if live_job(root / rid) is None and not store.is_complete(root / rid):
            failures.append(Failure(label, cfg.to_dict(), f"job {jid} ended without finishing the run; "
                                    "submit again to resume it", expected=False))
            say(f"{label} FAILED: job {jid} ended without finishing the run")
            return
        time.sleep(poll)
    done[rid] = store.load_run(root / rid)
    say(_done_line(label, done[rid], f"finished (job {jid})"))


def log_tail(job, lines: int = LOG_TAIL) -> list:
    """Return the last lines of a job's stderr (where a traceback goes), else of its stdout."""
    for text in (job.stderr(), job.stdout()):
        kept = [t for t in (text or "").splitlines() if t.strip()]
        if kept:
            return kept[-lines:]
    return []


# ---- the study's runs ----------------------------------------------------------------------------------

def study_configs(profile: str = "auto", seeds: int | None = None, **base) -> list:
    """Return the runs notebooks 01-05 load, built as they build them, every experiment's first seed first."""
    from .cam.settings import cifar_stem_config
    from .config import make_config, seed_list
    from .faster import default_validation
    from .results import variant
    first = make_config(profile=profile, **base)
    experiments = [first] + [variant(first, recipe=r) for r in ("flip_rotate", "crop", "crop_flip", "normalize")]
    experiments.append(variant(first, recipe="normalize", lr=0.5))  # notebook 03's fix_lr default
    hold = default_validation(first.train_size)
    experiments.append(make_config(profile=profile, recipe="fast", validation=hold, **base))
    configs = [variant(e, seed=s) for s in seed_list(first.seed, seeds, first.profile) for e in experiments]
    configs.insert(len(experiments), cifar_stem_config(first))  # notebook 04's CIFAR-stem model: one seed
    return configs


if __name__ == "__main__":
    from .cluster_bench import main
    sys.exit(main(sys.argv[1:]))
