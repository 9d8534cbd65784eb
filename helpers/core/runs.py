"""The run store: runs/<id>/ holds a run's history, checksummed checkpoints and, written last, its record.json.
The id hashes what changes training and the data; every write is atomic; one flock per run folder names its trainer."""
from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import errno
import fcntl
import hashlib
import io
import json
import os
import pickle
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from .project import project_root

RECORD = "record.json"  # a finished run's one file of results, written last


class CorruptRunError(RuntimeError):
    """A file in the run store is incomplete or corrupt."""


class StoreFullError(RuntimeError):
    """The disk that holds the run store is full: the run stopped, and resumes once space is freed."""


@contextlib.contextmanager
def full_disk_error(run_folder: Path):
    """Turn a full disk (or exceeded quota) inside the block into one StoreFullError saying how to go on."""
    try:
        yield
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        root = Path(run_folder).parent  # exists: run_lock made the run folder
        file = Path(err.filename).name if err.filename else "a file"
        raise StoreFullError(f"the run store {root} is full ({shutil.disk_usage(root).free / 1e9:.2f} GB free on its "
                             f"disk): run {Path(run_folder).name} stopped ({err.strerror or err} writing {file}). "
                             "Free some space, then run it again: it resumes from its last checkpoint.") from err


def runs_root(root=None) -> Path:
    """Return the run store folder: `root`, else $RUNS_DIR, else <project>/runs."""
    return Path(root or os.environ.get("RUNS_DIR") or project_root() / "runs")


def run_id(config_identity: dict, data_identity: dict) -> str:
    """Return the 12-hex-digit id of a run: a hash of its config and its data."""
    blob = json.dumps({"config": config_identity, "data": data_identity}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


class RunLockedError(RuntimeError):
    """Another live process is training this run."""


LOCK_WAIT_ENV = "RUN_LOCK_WAIT"  # seconds train_run waits for a run another process holds (default 0: it fails)


def lock_wait_s() -> float:
    """Return $RUN_LOCK_WAIT as seconds (0 when unset): how long train_run waits for another process's run."""
    text = os.environ.get(LOCK_WAIT_ENV, "").strip() or "0"
    with contextlib.suppress(ValueError):
        if float(text) >= 0:
            return float(text)
    raise ValueError(f"parameter '{LOCK_WAIT_ENV}' (environment) = {text!r} is invalid; valid: seconds, >= 0")


@contextlib.contextmanager
def run_lock(path: Path, timeout: float):
    """Hold the flock on `<run>/lock` (naming its pid), waiting up to `timeout` s; then delete killed writes' files."""
    file = Path(path) / "lock"
    file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(file, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + timeout
    try:
        while True:
            with contextlib.suppress(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            if time.monotonic() >= deadline:
                waited = f" after waiting {timeout:g} s" if timeout else ""
                raise RunLockedError(f"{file.parent} is being trained by another process{waited}; "
                                     f"wait for it, or stop it (set {LOCK_WAIT_ENV}=seconds to wait)")
            time.sleep(0.1)
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        for leftover in file.parent.glob(".*.tmp"):  # see atomic_write_bytes
            leftover.unlink(missing_ok=True)
        yield
    finally:
        os.close(fd)  # releases the flock; the file stays, or two processes could lock two different files


def wait_unlocked(path: Path, timeout: float):
    """Return once no process holds run folder `path`'s lock; raise RunLockedError after `timeout` seconds."""
    with run_lock(path, timeout=timeout):
        pass


# Test-only: "<marker file>:<seconds>" makes every checkpoint write create the marker, pause half-way through
# writing its temporary file, and remove the marker after the rename (tests/test_crash.py kills inside it).
WRITE_PAUSE_ENV = "RUNS_TEST_WRITE_PAUSE"


def atomic_write_bytes(path: Path, data: bytes, pause: bool = False):
    """Write bytes to a temporary file beside `path`, fsync, then rename over it; never leave the temporary file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    marker, _, seconds = (os.environ.get(WRITE_PAUSE_ENV, "") if pause else "").rpartition(":")
    try:
        with open(tmp, "wb") as f:
            f.write(memoryview(data)[:len(data) // 2])  # a view: a checkpoint's bytes are not copied
            if marker:
                Path(marker).write_text(str(path))
                f.flush()
                time.sleep(float(seconds))
            f.write(memoryview(data)[len(data) // 2:])
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if marker:
        Path(marker).unlink(missing_ok=True)


def atomic_write_json(path: Path, obj):
    """Write `obj` as indented JSON, atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())


def read_json(path: Path):
    """Return the parsed JSON file, or raise CorruptRunError naming it."""
    try:
        return json.loads(Path(path).read_text())
    except (FileNotFoundError, ValueError) as e:  # JSON's and UTF-8's decoding errors are ValueErrors
        raise CorruptRunError(f"{path}: missing or not JSON ({e}); delete the run or rerun with force=True") from None


# A checkpoint file: CHECKPOINT_MAGIC, the SHA-256 hex of the rest, a newline, then torch.save's bytes. Weights and
# checksum so land on disk in one rename: there is no moment at which one is new and the other old.
CHECKPOINT_MAGIC = b"RUNCKPT1 sha256="


def save_checkpoint(obj: dict, path: Path):
    """Write `obj` (tensors and plain types) as a checkpoint file, its checksum inside, in one atomic rename."""
    buf = io.BytesIO()
    torch.save(cpu_snapshot(obj), buf)
    data = buf.getvalue()
    atomic_write_bytes(path, CHECKPOINT_MAGIC + hashlib.sha256(data).hexdigest().encode() + b"\n" + data, pause=True)


def cpu_snapshot(obj):
    """Return a copy of `obj` with CPU copies of its tensors (CUDA ones via pinned memory), numpy values converted."""
    cuda = set()

    def copy(x):
        if isinstance(x, dict):
            out = (type(x) if type(x) in (dict, collections.OrderedDict) else dict)((k, copy(v)) for k, v in x.items())
            if hasattr(x, "_metadata"):  # a module state_dict's versions, used by load_state_dict
                out._metadata = x._metadata
            return out
        if isinstance(x, (list, tuple)):
            return (type(x) if type(x) in (list, tuple) else list)(copy(v) for v in x)
        if x is None or isinstance(x, (bool, int, float, str)):
            return x
        if not isinstance(x, torch.Tensor):
            if hasattr(x, "item") and getattr(x, "shape", None) == ():  # a numpy scalar
                return x.item()
            if not hasattr(x, "__array__"):
                raise TypeError(f"a checkpoint holds tensors and plain types only; got {type(x).__name__}")
            x = torch.as_tensor(x)
        if x.device.type != "cuda":
            return x.detach().clone()
        cuda.add(x.device)
        return torch.empty(x.shape, dtype=x.dtype, pin_memory=True).copy_(x.detach(), non_blocking=True)

    out = copy(obj)
    for device in cuda:
        torch.cuda.synchronize(device)
    return out


class CheckpointWriter:
    """Writes one epoch's checkpoints at a time on a background thread; its errors surface at submit or drain."""

    def __init__(self):
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="checkpoint-writer")
        self._pending: concurrent.futures.Future | None = None

    def submit(self, checkpoints: list, files: list):
        """Write [(state, path)] checkpoints, then [(path, bytes)] files, after draining the last write."""
        self.drain()
        self._pending = self._pool.submit(self._write, [(cpu_snapshot(obj), p) for obj, p in checkpoints], files)

    @staticmethod
    def _write(jobs, files):
        for obj, path in jobs:
            save_checkpoint(obj, path)
        for path, data in files:  # history.csv after last.pt: it never runs ahead of the checkpoint
            atomic_write_bytes(path, data)

    def drain(self):
        """Wait for the pending write; raise its error, if any, here."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()


def load_checkpoint(path: Path, map_location="cpu") -> dict:
    """Return a checkpoint (weights_only) after checking its SHA-256; raise CorruptRunError if it does not match."""
    header, _, payload = Path(path).read_bytes().partition(b"\n")
    if header != CHECKPOINT_MAGIC + hashlib.sha256(payload).hexdigest().encode():
        raise CorruptRunError(f"{path}: checkpoint is corrupt or incomplete (SHA-256 does not match its header); "
                              "delete it, or rerun with force=True")
    try:
        return torch.load(io.BytesIO(payload), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise CorruptRunError(f"{path}: holds more than tensors and plain types, so it is not loaded "
                              f"(torch.load weights_only: {str(e).splitlines()[0]}); rerun with force=True") from None


@dataclass
class Run:
    """A finished run as stored: its record (experiment, config, results, environment) and per-epoch history."""
    path: Path
    record: dict
    history: pd.DataFrame

    id = property(lambda self: self.record["run_id"], doc="The run id (the folder's name in a run store).")
    experiment = property(lambda self: self.record["experiment"], doc="The experiment's name (config.experiment_name).")
    config = property(lambda self: self.record["config"], doc="The run's Config as a dict.")
    metrics = property(lambda self: self.record["results"], doc="The results: final and best accuracy, per class, ...")
    env = property(lambda self: self.record["env"], doc="Versions, device, threads, commit and finishing time.")
    final_acc = property(lambda self: float(self.metrics["final_test_acc"]), doc="The last epoch's test accuracy (%).")
    best_acc = property(lambda self: float(self.metrics["best_test_acc"]), doc="The best epoch's test accuracy (%).")

    def checkpoint_path(self, epoch: int | None = None) -> Path:
        """Return the path of the weights at `epoch` (a snapshot epoch; None: the last)."""
        if epoch is None:
            epoch = int(self.config["epochs"])
        p = self.path / f"epoch{epoch:03d}.pt"
        if not p.exists():
            kept = sorted(int(f.stem[5:]) for f in self.path.glob("epoch*.pt"))
            raise ValueError(f"parameter 'epoch' = {epoch!r} has no checkpoint in run {self.id}; valid: {kept}")
        return p

    def load_model(self, epoch: int | None = None):
        """Return the model with the weights of `epoch` (None: final), on the CPU in eval mode."""
        from .models import build_model
        model = build_model(self.config["stem"])
        model.load_state_dict(load_checkpoint(self.checkpoint_path(epoch))["model"])
        return model.eval()

    def __repr__(self):
        c = self.config
        return (f"Run({self.id}: recipe={c['recipe']}, epochs={c['epochs']}, lr={c['lr']}, "
                f"final {self.final_acc:.2f}%, best {self.best_acc:.2f}%)")


def is_complete(path: Path) -> bool:
    """Return whether the run folder holds a finished run (record.json is written last)."""
    return (Path(path) / RECORD).exists()


def load_run(path: Path) -> Run:
    """Return the finished run stored in `path`."""
    path = Path(path)
    if not is_complete(path):
        raise FileNotFoundError(f"{path} holds no finished run")
    try:
        history = pd.read_csv(path / "history.csv")
    except Exception as e:
        raise CorruptRunError(f"{path / 'history.csv'}: unreadable ({e}); rerun with force=True") from None
    return Run(path, read_json(path / RECORD), history)


def records(folder=None) -> pd.DataFrame:
    """Return one row per finished run in a folder of runs (a run store, or report/reference/<profile>)."""
    rows = []
    for path in sorted(runs_root(folder).glob(f"*/{RECORD}")):
        r = read_json(path)
        c, res, env = r["config"], r["results"], r["env"]
        rows.append({**c, **res, "run_id": r["run_id"], "experiment": r["experiment"],
                     "data": r["data"].get("fingerprint", r["data"]["source"]), "folder": path.parent.name,
                     "device": env.get("device_name") or env.get("device"), "commit": env.get("git_commit"),
                     "date": (env.get("finished") or "")[:10]})
    return pd.DataFrame(rows, columns=["run_id", "recipe", "experiment", "profile", "lr", "seed", "epochs",
                                       "train_images", "eval_set", "final_test_acc", "best_test_acc",
                                       "raw_final_test_acc", "raw_best_test_acc", "data_source", "data", "device",
                                       "commit", "date", "folder"])


def remove_run(path: Path):
    """Delete a run folder (used by force=True)."""
    shutil.rmtree(path, ignore_errors=True)
