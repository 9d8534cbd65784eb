"""The run store: runs/<id>/ holds a run's config, history, metrics, environment and checkpoints.

The id hashes the run's config and data identity, so the same experiment is found again instead
of being retrained, from any notebook. Every write is atomic; every checkpoint carries a SHA-256
beside it, and one that does not match is reported, never used.
"""
from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from .data import project_root


class CorruptRunError(RuntimeError):
    """A file in the run store is incomplete or corrupt."""


class RunLockedError(RuntimeError):
    """Another live process is training this run."""


def runs_root(root=None) -> Path:
    """Return the run store folder: `root`, else $RUNS_DIR, else <project>/runs."""
    return Path(root or os.environ.get("RUNS_DIR") or project_root() / "runs")


def run_id(config_identity: dict, data_identity: dict) -> str:
    """Return the 12-hex-digit id of a run: a hash of its config and its data."""
    blob = json.dumps({"config": config_identity, "data": data_identity}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


# ---- atomic files ---------------------------------------------------------------------------

def atomic_write_bytes(path: Path, data: bytes):
    """Write bytes to a temporary file beside `path`, fsync, then rename over it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_json(path: Path, obj):
    """Write `obj` as indented JSON, atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())


def read_json(path: Path):
    """Return the parsed JSON file, or raise CorruptRunError naming it."""
    try:
        return json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CorruptRunError(f"{path}: not valid JSON ({e}); delete the run folder or rerun with force=True") from None


def save_checkpoint(obj: dict, path: Path):
    """torch.save `obj` atomically, with its SHA-256 in `<path>.sha256`."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    data = buf.getvalue()
    atomic_write_bytes(path, data)
    atomic_write_bytes(Path(f"{path}.sha256"), hashlib.sha256(data).hexdigest().encode())


def cpu_snapshot(obj):
    """Return a deep copy of `obj` whose tensors are CPU copies, safe to save while training goes on.

    CUDA tensors are copied into pinned memory without blocking, then synchronised once.
    """
    cuda = []

    def copy_tensor(t: torch.Tensor) -> torch.Tensor:
        t = t.detach()
        if t.device.type == "cuda":
            out = torch.empty(t.shape, dtype=t.dtype, pin_memory=True).copy_(t, non_blocking=True)
            cuda.append(t.device)
            return out
        return t.clone()

    def walk(o):
        if isinstance(o, torch.Tensor):
            return copy_tensor(o)
        if isinstance(o, dict):
            out = type(o)((k, walk(v)) for k, v in o.items())
            if hasattr(o, "_metadata"):  # a module state_dict's versions, used by load_state_dict
                out._metadata = copy.deepcopy(o._metadata)
            return out
        if isinstance(o, (list, tuple)):
            return type(o)(walk(v) for v in o)
        return copy.deepcopy(o)

    out = walk(obj)
    for device in set(cuda):
        torch.cuda.synchronize(device)
    return out


class CheckpointWriter:
    """Writes checkpoints on a background thread, one epoch's files at a time, in order.

    `submit` snapshots the state to CPU tensors (the only part the training thread waits for, besides
    the previous epoch's write), then serialises, hashes and writes atomically in the background.
    The previous write is drained first, so on disk there is always the last or the next-to-last
    finished epoch: a kill -9 loses at most one epoch. A write error is raised in the training
    thread at the next `submit` or `drain`, never lost.
    """

    def __init__(self, background: bool = True):
        self.background = background
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def submit(self, checkpoints: list, files: list = ()):
        """Write [(state, path)] checkpoints, then [(path, bytes)] files, after draining the last write."""
        self.drain()
        jobs = [(cpu_snapshot(obj), Path(path)) for obj, path in checkpoints]
        if not self.background:
            return self._write(jobs, files)
        self._thread = threading.Thread(target=self._run, args=(jobs, list(files)), name="checkpoint-writer",
                                        daemon=True)
        self._thread.start()

    def _run(self, jobs, files):
        try:
            self._write(jobs, files)
        except BaseException as e:  # handed to the training thread by drain()
            self._error = e

    @staticmethod
    def _write(jobs, files):
        for obj, path in jobs:
            save_checkpoint(obj, path)
        for path, data in files:  # history.csv after last.pt: it never runs ahead of the checkpoint
            atomic_write_bytes(Path(path), data)

    def drain(self):
        """Wait for the pending write; raise its error, if any, here."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            err, self._error = self._error, None
            raise err


def load_checkpoint(path: Path, map_location="cpu") -> dict:
    """Return a checkpoint after checking its SHA-256; raise CorruptRunError if it does not match."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    data = path.read_bytes()
    sidecar = Path(f"{path}.sha256")
    expected = sidecar.read_text().strip() if sidecar.exists() else None
    if expected != hashlib.sha256(data).hexdigest():
        raise CorruptRunError(f"{path}: checkpoint is corrupt or incomplete (SHA-256 does not match "
                              f"{sidecar.name}); delete it, or rerun with force=True")
    return torch.load(io.BytesIO(data), map_location=map_location, weights_only=False)


# ---- a lock so two processes never train the same run at once -------------------------------

class RunLock:
    """Exclusive lock on a run folder; a lock left by a dead process is taken over."""

    def __init__(self, path: Path):
        self.file = Path(path) / "lock"

    def __enter__(self):
        self.file.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.file, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                os.write(fd, str(os.getpid()).encode())
                os.close(fd)
                return self
            except FileExistsError:
                try:
                    pid = int(self.file.read_text() or 0)
                    os.kill(pid, 0)
                    alive = pid != os.getpid()
                except (ValueError, ProcessLookupError, FileNotFoundError):
                    alive = False
                except PermissionError:
                    alive = True
                if alive:
                    raise RunLockedError(f"{self.file.parent} is being trained by process {pid}; "
                                         "wait for it, or stop it") from None
                self.file.unlink(missing_ok=True)
        raise RunLockedError(f"could not lock {self.file.parent}")

    def __exit__(self, *exc):
        self.file.unlink(missing_ok=True)


# ---- runs -----------------------------------------------------------------------------------

@dataclass
class Run:
    """A finished run as stored: config, per-epoch history, metrics and environment."""
    id: str
    path: Path
    config: dict
    history: pd.DataFrame
    metrics: dict
    env: dict

    @property
    def final_acc(self) -> float:
        """Return the last epoch's test accuracy (percent)."""
        return float(self.metrics["final_test_acc"])

    @property
    def best_acc(self) -> float:
        """Return the best epoch's test accuracy (percent)."""
        return float(self.metrics["best_test_acc"])

    def checkpoint_path(self, epoch: int | None = None) -> Path:
        """Return the path of the weights at `epoch` (a snapshot epoch; None: the last)."""
        if epoch is None:
            epoch = int(self.config["epochs"])
        p = self.path / f"epoch{epoch:03d}.pt"
        if not p.exists():
            kept = sorted(int(f.stem[5:]) for f in self.path.glob("epoch*.pt"))
            raise ValueError(f"parameter 'epoch' = {epoch!r} has no checkpoint in run {self.id}; valid: {kept}")
        return p

    def load_model(self, epoch: int | None = None, device="cpu"):
        """Return the model with the weights of `epoch` (None: final), in eval mode."""
        from .models import build_model
        model = build_model(self.config["stem"])
        model.load_state_dict(load_checkpoint(self.checkpoint_path(epoch))["model"])
        return model.to(device).eval()

    def __repr__(self):
        c = self.config
        return (f"Run({self.id}: recipe={c['recipe']}, epochs={c['epochs']}, lr={c['lr']}, "
                f"final {self.final_acc:.2f}%, best {self.best_acc:.2f}%)")


def is_complete(path: Path) -> bool:
    """Return whether the run folder holds a finished run (metrics.json is written last)."""
    return (Path(path) / "metrics.json").exists()


def load_run(path: Path) -> Run:
    """Return the finished run stored in `path`."""
    path = Path(path)
    if not is_complete(path):
        raise FileNotFoundError(f"{path} holds no finished run")
    try:
        history = pd.read_csv(path / "history.csv")
    except Exception as e:
        raise CorruptRunError(f"{path / 'history.csv'}: unreadable ({e}); rerun with force=True") from None
    return Run(path.name, path, read_json(path / "config.json"), history,
               read_json(path / "metrics.json"), read_json(path / "env.json"))


def runs_summary(root=None) -> pd.DataFrame:
    """Return one row per finished run in the store: its config and final/best test accuracy."""
    rows = []
    for p in sorted(runs_root(root).glob("*/metrics.json")):
        try:
            r = load_run(p.parent)
        except (CorruptRunError, FileNotFoundError):
            continue
        c = r.config
        rows.append({"run": r.id, "recipe": c["recipe"], "mismatch": c.get("mismatch", False),
                     "stem": c["stem"], "epochs": c["epochs"], "lr": c["lr"],
                     "train_size": c["train_size"], "source": r.metrics.get("data_source"),
                     "final_test_acc": r.final_acc, "best_test_acc": r.best_acc,
                     "final_train_acc": float(r.history["train_acc"].iloc[-1]),
                     "minutes": r.history["seconds"].sum() / 60})
    return pd.DataFrame(rows)


def remove_run(path: Path):
    """Delete a run folder (used by force=True)."""
    shutil.rmtree(path, ignore_errors=True)
