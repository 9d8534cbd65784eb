"""Train runs as submitit jobs, one per run, into the shared run store: local processes or a Slurm cluster.

train_many comes here for its concurrent runs (local jobs, a few at a time) and for `executor=`/`--cluster`
(every run at once, a Slurm job array). This process forwards each job's progress lines, then loads its run.
A job at its time limit or preempted is requeued (TrainTask is a submitit Checkpointable) and resumes from the
run's last.pt. One job owns one run id, so no lock across hosts is needed: see docs/cluster.md.
"""
from __future__ import annotations

import dataclasses
import os
import shlex
import shutil
import socket
import subprocess
import time
from pathlib import Path

import submitit

from . import runs as store
from .config import Config, ConfigError
from .sweep import EXPECTED, LOG_TAIL, done_line, record_failure, run_label, train_one

KINDS = ("slurm", "local")
JOB_FILE = "job.json"  # in a run folder: the cluster and id of the job a submission sent the run to
NODE_LOCAL = ("/tmp", "/var/tmp", "/dev/shm", "/run")  # folders a compute node does not share with the login node
LOCAL_TIME_MIN = 7 * 24 * 60  # the time limit of train_many's local jobs: none in practice


@dataclasses.dataclass(frozen=True)
class ClusterSettings:
    """What every job asks the scheduler for (SETTING_OPTIONS); each defaults to $CLUSTER_<NAME> (from_env)."""
    kind: str = "slurm"
    partition: str | None = None
    account: str | None = None
    gpus_per_task: int = 1
    cpus_per_task: int = 8
    time_min: int = 120
    array_parallelism: int = 32
    max_requeues: int = 10
    log_dir: str | None = None

    @classmethod
    def from_env(cls, environ=None, **overrides) -> ClusterSettings:
        """Return the settings: each override that is not None, else $CLUSTER_<NAME>, else the default."""
        environ = os.environ if environ is None else environ
        values = {}
        for f in dataclasses.fields(cls):
            given, where, env = overrides.pop(f.name, None), f"parameter {f.name!r}", f"CLUSTER_{f.name.upper()}"
            if f.name == "kind":
                where = "parameter 'cluster'"
            elif given is None and environ.get(env, "").strip():
                given, where = environ[env].strip(), f"parameter {env!r} (environment)"
            if given is not None:
                values[f.name] = _checked(f, given, where)
        if overrides:
            raise ConfigError(f"unknown cluster parameter(s) {sorted(overrides)}; "
                              f"valid: {[f.name for f in dataclasses.fields(cls)]}")
        return cls(**values)


# The command line's options for the settings (python -m helpers.tools.cli train --cluster KIND --time-min 240 ...).
SETTING_OPTIONS = {
    "partition": "Slurm partition (default $CLUSTER_PARTITION, else the cluster's default)",
    "account": "Slurm account to charge (default $CLUSTER_ACCOUNT, else yours)",
    "gpus_per_task": "GPUs per run (default $CLUSTER_GPUS_PER_TASK, else 1)",
    "cpus_per_task": "CPU cores per run; torch threads follow (default $CLUSTER_CPUS_PER_TASK, else 8)",
    "time_min": "time limit per job in minutes; a run past it is requeued (default $CLUSTER_TIME_MIN, else 120)",
    "array_parallelism": "most runs at once (default $CLUSTER_ARRAY_PARALLELISM, else 32)",
    "max_requeues": "time-outs allowed per run; preemptions are free (default $CLUSTER_MAX_REQUEUES, else 10)",
    "log_dir": "submitit's job files and logs (default $CLUSTER_LOG_DIR, else <run store>/.submitit)",
}


def _checked(f: dataclasses.Field, value, where: str):
    """Return a setting's value in its type; raise ConfigError naming it, the value and the valid choices."""
    text = str(value).strip()
    if f.name == "kind" and value not in KINDS:
        raise ConfigError(f"{where} = {value!r} is invalid; valid: {' | '.join(KINDS)}")
    if f.default is None or isinstance(f.default, str):
        if not text:
            raise ConfigError(f"{where} = {value!r} is invalid; valid: a non-empty name")
        return text
    low = 0 if f.name in ("gpus_per_task", "max_requeues") else 1
    if isinstance(value, bool) or not text.isdigit() or int(text) < low:
        raise ConfigError(f"{where} = {value!r} is invalid; valid: a {'non-negative' if low == 0 else 'positive'} "
                          "integer")
    return int(text)


def node_local_reason(path) -> str | None:
    """Return why `path` is not seen by every node (a temporary or memory-backed folder), or None."""
    p = Path(path).expanduser().resolve()
    prefix = next((d for d in NODE_LOCAL if p == Path(d) or Path(d) in p.parents), None)
    if prefix:
        return f"it is under {prefix}, and every node has its own {prefix}"
    existing = next(q for q in (p, *p.parents) if q.exists())
    kind = subprocess.run(["stat", "-f", "-c", "%T", existing], capture_output=True, text=True).stdout.strip()
    return f"it is on a {kind} file system (memory of one node)" if kind in ("tmpfs", "ramfs") else None


def make_executor(settings: ClusterSettings, root: Path):
    """Return a submitit executor for the settings; for Slurm, first check (ConfigError) its commands and folders."""
    kind, logs = settings.kind, Path(settings.log_dir or Path(root) / ".submitit")
    missing = next((c for c in ("sbatch", "srun") if shutil.which(c) is None), None) if kind == "slurm" else None
    if missing:
        raise ConfigError(f"parameter 'cluster' = 'slurm' is invalid here: no `{missing}` on PATH (not a Slurm "
                          "login node); valid: run it on a login node of a Slurm cluster, or --cluster local")
    for name, folder in (("RUNS_DIR", root), ("CLUSTER_LOG_DIR", logs)) if kind == "slurm" else ():
        why = node_local_reason(folder)
        if why:
            raise ConfigError(f"parameter {name!r} = '{folder}' is invalid for --cluster slurm: {why}; "
                              "valid: a folder on storage every node mounts (home, project or scratch space)")
    ex = submitit.AutoExecutor(folder=logs / "%j", cluster=kind, **{f"{kind}_max_num_timeout": settings.max_requeues})
    params = dict(name="helpers-run", timeout_min=settings.time_min, nodes=1, tasks_per_node=1,
                  cpus_per_task=settings.cpus_per_task, gpus_per_node=settings.gpus_per_task)
    if kind == "slurm":
        params.update(slurm_array_parallelism=settings.array_parallelism,
                      **{f"slurm_{k}": getattr(settings, k) for k in ("partition", "account") if getattr(settings, k)})
    elif os.environ.get("CUDA_VISIBLE_DEVICES"):  # a local job sees the GPUs this process sees, not GPU 0
        params["local_setup"] = [f"export CUDA_VISIBLE_DEVICES={shlex.quote(os.environ['CUDA_VISIBLE_DEVICES'])}"]
    ex.update_parameters(**params)
    return ex


def local_executor(root: Path, cuda: bool):
    """Return the executor of train_many's concurrent runs: local jobs, each seeing this machine's GPU on CUDA."""
    return make_executor(ClusterSettings(kind="local", gpus_per_task=int(cuda), time_min=LOCAL_TIME_MIN), root)


def resolve_executor(executor, root: Path, **options):
    """Return the executor given, or one made from a kind ('slurm' | 'local'), `options` and $CLUSTER_*, checked."""
    if isinstance(executor, str):
        return make_executor(ClusterSettings.from_env(kind=executor, **options), root)
    if not isinstance(executor, submitit.Executor):
        raise ConfigError(f"parameter 'executor' = {executor!r} is invalid; valid: None, 'slurm', 'local' "
                          "or a submitit executor")
    return executor


# ---- the task: one run ----------------------------------------------------------------------------

class TrainTask(submitit.helpers.Checkpointable):
    """Train one run into the run store and return its summary; requeued on time-out or preemption.
    Torch threads: $RUN_THREADS, else `threads`, else the task's CPUs ($SLURM_CPUS_PER_TASK), else torch's."""

    def __init__(self, config: Config, rid: str, runs_dir: str, threads: int | None = None):
        self.config, self.rid, self.runs_dir, self.threads = config, rid, str(runs_dir), threads

    def __call__(self) -> dict:
        """Train (or resume, or load) the run; print one progress line per epoch; return its summary."""
        import torch
        threads = os.environ.get("RUN_THREADS") or str(self.threads or "") or os.environ.get("SLURM_CPUS_PER_TASK", "")
        if threads.isdigit() and int(threads) > 0:
            torch.set_num_threads(int(threads))
        print(f"{run_label(self.config, self.rid)} training on {socket.gethostname()} (pid {os.getpid()}, "
              f"{torch.get_num_threads()} threads)", flush=True)
        run = train_one(self.config, self.rid, self.runs_dir, lambda text: print(text, flush=True))
        return {"run": run.id, "final_test_acc": run.final_acc, "best_test_acc": run.best_acc,
                "minutes": float(run.history["seconds"].sum() / 60), "host": socket.gethostname()}

    def checkpoint(self, *args, **kwargs) -> submitit.helpers.DelayedSubmission:
        """Requeue the same task: the run store's last.pt is the checkpoint, and train_run resumes from it."""
        history = Path(self.runs_dir) / self.rid / "history.csv"  # written after last.pt: never ahead of it
        epochs = max(0, len(history.read_text().splitlines()) - 1) if history.exists() else 0
        print(f"{run_label(self.config, self.rid)} interrupted after epoch {epochs}; requeued, it resumes from last.pt",
              flush=True)
        return super().checkpoint(*args, **kwargs)


# ---- the submitting side ----------------------------------------------------------------------------

def submit(pending: list, executor, root: Path, threads: int | None = None) -> list:
    """Submit one TrainTask per (run id, config), as one array, each recorded in its JOB_FILE; return the jobs."""
    with executor.batch():
        jobs = [executor.submit(TrainTask(c, rid, str(root), threads)) for rid, c in pending]
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


def run_jobs(pending: list, executor, root: Path, say, done: dict, failures: list, at_once: int | None = None,
             threads: int | None = None, wait: bool = True):
    """Train each pending (run id, config) in a job of its own into `done` and `failures`, forwarding its progress.

    `at_once` jobs run at a time (None: all, and they are not cancelled when this is interrupted); `wait=False`
    returns once they are submitted. A run an earlier submission's job still trains is waited for, not sent again.
    """
    configs, elsewhere = dict(pending), {rid: jid for rid, _ in pending if (jid := live_job(root / rid))}
    for rid, jid in elsewhere.items():
        say(f"{run_label(configs[rid], rid)} is already queued or running as job {jid}; not sent again")
    todo = [(rid, c) for rid, c in pending if rid not in elsewhere]
    poll = 30 if getattr(executor, "cluster", None) == "slurm" or "Slurm" in type(executor).__name__ else 0.5
    running = {}  # job -> [run id, config, progress lines forwarded]
    try:
        while todo or running:
            room = len(todo) if at_once is None else at_once - len(running)
            batch, todo = todo[:room], todo[room:]
            for job, (rid, c) in zip(submit(batch, executor, root, threads) if batch else [], batch):
                running[job] = [rid, c, 0]
                say(f"{run_label(c, rid)} submitted as job {job.job_id} (its log: {job.paths.stdout})")
            if not wait:
                return
            time.sleep(poll)
            for job, (rid, c, shown) in list(running.items()):
                finished = job.done()  # before reading the log: its last lines are in once it is done
                lines = [t for t in (job.stdout() or "").splitlines() if t.startswith("[")]
                for line in lines[shown:]:
                    say(line)
                running[job][2] = len(lines)
                if finished:
                    del running[job]
                    _collect(job, rid, c, root, say, done, failures)
    finally:
        for job in running if at_once else ():
            job.cancel(check=False)
    for rid, jid in elsewhere.items() if wait else ():
        _await_elsewhere(rid, configs[rid], jid, root, poll, say, done, failures)


def _collect(job, rid, cfg, root, say, done, failures):
    """Record a finished job: its run, loaded from the store; or a failure named with its log's tail."""
    label, error = run_label(cfg, rid), job.exception()
    if error is None and store.is_complete(root / rid):
        try:
            done[rid] = store.load_run(root / rid)
            say(done_line(label, done[rid], f"finished (job {job.job_id}, {job.result()['host']})"))
        except store.CorruptRunError as e:
            record_failure(failures, say, label, cfg, f"CorruptRunError: {e}", expected=True)
        return
    logs = [[t for t in (text or "").splitlines() if t.strip()] for text in (job.stderr(), job.stdout())]
    tail = next((lines[-LOG_TAIL:] for lines in logs if lines), [])  # stderr (a traceback), else stdout
    last = tail[-1] if tail else str(error).strip().splitlines()[-1] if error else "no output"
    why = "failed" if isinstance(error, submitit.core.utils.FailedJobError) else \
        "ended without a result (killed: out of memory, kill -9?)"
    record_failure(failures, say, label, cfg, f"job {job.job_id} {why}: {last}", tail,
                   any(f"{e.__name__}:" in last for e in EXPECTED), log=job.paths.stderr)


def _await_elsewhere(rid, cfg, jid, root, poll, say, done, failures):
    """Wait for a run an earlier submission's job trains: load it when finished, or record that the job ended."""
    while not store.is_complete(root / rid):
        if live_job(root / rid) is None and not store.is_complete(root / rid):
            record_failure(failures, say, run_label(cfg, rid), cfg,
                           f"job {jid} ended without finishing the run; submit again to resume it")
            return
        time.sleep(poll)
    done[rid] = store.load_run(root / rid)
    say(done_line(run_label(cfg, rid), done[rid], f"finished (job {jid})"))

