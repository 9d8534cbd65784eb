"""Train runs as submitit jobs, one per run id, into the shared run store: local processes or a Slurm job array. A
job at its time limit or preempted is requeued (TrainTask is Checkpointable), resumes from last.pt (docs/cluster.md)."""
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
from .sweep import EXPECTED, LOG_TAIL, load_done, record_failure, run_label, train_one

KINDS = ("slurm", "local")
JOB_FILE = "job.json"  # in a run folder: the cluster and id of the job a submission sent the run to
NODE_LOCAL = ("/tmp", "/var/tmp", "/dev/shm", "/run")  # folders a compute node does not share with the login node
NON_NEGATIVE = ("gpus_per_task", "max_requeues")  # the integer settings that may be 0


def _setting(default, text: str):
    """Return a settings field with its command-line help (cli train --cluster KIND --time-min 240 ...)."""
    return dataclasses.field(default=default, metadata={"help": text})


@dataclasses.dataclass(frozen=True)
class ClusterSettings:
    """What every job asks the scheduler for; each defaults to $CLUSTER_<NAME> (from_env), docs/cluster.md's table."""
    kind: str = "slurm"
    partition: str | None = _setting(None, "Slurm partition (default: the cluster's)")
    account: str | None = _setting(None, "Slurm account to charge (default: yours)")
    gpus_per_task: int = _setting(1, "GPUs per run (default 1)")
    cpus_per_task: int = _setting(8, "CPU cores per run; torch threads follow (default 8)")
    time_min: int = _setting(120, "time limit per job in minutes; a run past it is requeued (default 120)")
    array_parallelism: int = _setting(32, "most runs at once (default 32)")
    max_requeues: int = _setting(10, "time-outs allowed per run; preemptions are free (default 10)")
    log_dir: str | None = _setting(None, "submitit's job files and logs (default <run store>/.submitit)")

    @classmethod
    def from_env(cls, environ=None, kind="slurm", **given) -> ClusterSettings:
        """Return the settings: each `given` value not None, else $CLUSTER_<NAME>, else the default; ConfigError."""
        environ, values = os.environ if environ is None else environ, {"kind": str(kind).strip()}
        if values["kind"] not in KINDS:
            raise ConfigError(f"parameter 'cluster' = {kind!r} is invalid; valid: {' | '.join(KINDS)}")
        for name in SETTING_OPTIONS:
            value, env, where = given.get(name), f"CLUSTER_{name.upper()}", f"parameter {name!r}"
            if value is None and environ.get(env, "").strip():
                value, where = environ[env].strip(), f"parameter {env!r} (environment)"
            if value is None:
                continue
            text, number, low = str(value).strip(), isinstance(getattr(cls, name), int), int(name not in NON_NEGATIVE)
            if number and (isinstance(value, bool) or not text.isdigit() or int(text) < low):
                valid = ("a non-negative", "a positive")[low]
                raise ConfigError(f"{where} = {value!r} is invalid; valid: {valid} integer")
            values[name] = int(text) if number else text  # a name: '' asks for the default
        return cls(**values)


SETTING_OPTIONS = {f.name: f.metadata["help"] for f in dataclasses.fields(ClusterSettings) if f.metadata}


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
        if why := node_local_reason(folder):
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
    """Return the executor of train_many's concurrent runs: local jobs (a week's limit), on this machine's GPU."""
    return make_executor(ClusterSettings(kind="local", gpus_per_task=int(cuda), time_min=7 * 24 * 60), root)


def resolve_executor(executor, root: Path, **options):
    """Return the executor given, or one made from a kind ('slurm' | 'local'), `options` and $CLUSTER_*, checked."""
    if isinstance(executor, str):
        return make_executor(ClusterSettings.from_env(kind=executor, **options), root)
    if not isinstance(executor, submitit.Executor):
        raise ConfigError(f"parameter 'executor' = {executor!r} is invalid; valid: None, 'slurm', 'local' "
                          "or a submitit executor")
    return executor


def is_slurm(executor) -> bool:
    """Return whether a submitit executor sends its jobs to Slurm."""
    return getattr(executor, "cluster", None) == "slurm" or "Slurm" in type(executor).__name__


class TrainTask(submitit.helpers.Checkpointable):
    """One run trained into the run store; torch threads: $RUN_THREADS, else `threads`, else the task's CPUs."""

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


def submit(pending: list, executor, root: Path, threads: int | None = None) -> list:
    """Submit one TrainTask per (run id, config), as one array, each recorded in its JOB_FILE; return the jobs."""
    with executor.batch():
        jobs = [executor.submit(TrainTask(c, rid, str(root), threads)) for rid, c in pending]
    for job, (rid, _) in zip(jobs, pending):
        store.atomic_write_json(root / rid / JOB_FILE, {"cluster": KINDS[not is_slurm(executor)], "job_id": job.job_id})
    return jobs


def live_job(path: Path) -> str | None:
    """Return the id of the job an earlier submission sent the run in `path` to, if it is still queued or running."""
    try:
        job = store.read_json(Path(path) / JOB_FILE)
    except store.CorruptRunError:  # none, or unreadable
        return None
    jid = str(job.get("job_id"))
    if job.get("cluster") == "slurm":
        out = shutil.which("squeue") and subprocess.run(["squeue", "-h", "-o", "%i", "-j", jid], capture_output=True,
                                                        text=True)
        return jid if out and out.returncode == 0 and out.stdout.strip() else None
    try:
        os.kill(int(jid), 0)  # a local job: its controller process, on this machine
    except (ValueError, ProcessLookupError):
        return None
    except PermissionError:
        pass
    return jid


def run_jobs(pending: list, executor, root: Path, say, done: dict, failures: list, at_once: int | None = None,
             threads: int | None = None, wait: bool = True):
    """Train each (run id, config) in a job, `at_once` at a time (None: all, kept on an interrupt), into `done`."""
    configs, elsewhere = dict(pending), {rid: jid for rid, _ in pending if (jid := live_job(root / rid))}
    for rid, jid in elsewhere.items():
        say(f"{run_label(configs[rid], rid)} is already queued or running as job {jid}; not sent again")
    todo = [(rid, c) for rid, c in pending if rid not in elsewhere]
    poll = 30 if is_slurm(executor) else 0.5
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
    for rid, jid in elsewhere.items() if wait else ():  # a run an earlier job still trains: waited for
        while not store.is_complete(root / rid) and live_job(root / rid):
            time.sleep(poll)
        if store.is_complete(root / rid):
            load_done(rid, configs[rid], root, say, done, failures, f"finished (job {jid})")
        else:
            record_failure(failures, say, configs[rid], rid, f"job {jid} ended without finishing the run; submit again")


def _collect(job, rid, cfg, root, say, done, failures):
    """Load a finished job's run into `done`, or record its failure with its log's tail."""
    error = job.exception()
    if error is None and store.is_complete(root / rid):
        return load_done(rid, cfg, root, say, done, failures, f"finished (job {job.job_id}, {job.result()['host']})")
    logs = [[t for t in (text or "").splitlines() if t.strip()] for text in (job.stderr(), job.stdout())]
    tail = next((lines[-LOG_TAIL:] for lines in logs if lines), [])  # stderr (a traceback), else stdout
    last = tail[-1] if tail else str(error).strip().splitlines()[-1] if error else "no output"
    why = "failed" if isinstance(error, submitit.core.utils.FailedJobError) else "ended without a result (killed: " \
        "out of memory, kill -9?)"
    record_failure(failures, say, cfg, rid, f"job {job.job_id} {why}: {last}", tail,
                   any(f"{e.__name__}:" in last for e in EXPECTED), log=job.paths.stderr)
