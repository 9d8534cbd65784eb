"""Checkpoints written in the background: a snapshot is frozen, a write error reaches the trainer, kill -9 resumes exactly."""
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

import helpers as h
from helpers import runs as store

COMPARE = ["epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc"]
TINY = dict(profile="smoke", train_size=200, test_size=100, batch_size=50, recipe="crop_flip")


def test_snapshot_is_frozen_and_written_in_order(tmp_path):
    model = torch.nn.Linear(4, 3)
    state = {"model": model.state_dict(), "history": [{"epoch": 1}]}
    writer = store.CheckpointWriter()
    writer.submit([(state, tmp_path / "last.pt")], [(tmp_path / "history.csv", b"epoch\n1\n")])
    with torch.no_grad():  # training goes on while the thread writes: the checkpoint must not see it
        model.weight.add_(1.0)
    state["history"].append({"epoch": 2})
    writer.drain()
    saved = store.load_checkpoint(tmp_path / "last.pt")
    torch.testing.assert_close(saved["model"]["weight"], model.weight.detach() - 1.0)
    assert saved["history"] == [{"epoch": 1}]
    assert (tmp_path / "history.csv").read_bytes() == b"epoch\n1\n"
    assert (tmp_path / "last.pt").stat().st_mtime_ns <= (tmp_path / "history.csv").stat().st_mtime_ns


def test_write_error_in_the_thread_is_raised_in_the_training_thread(tmp_path, monkeypatch):
    real = store.atomic_write_bytes

    def failing(path, data):
        if Path(path).name == "last.pt":
            raise OSError(f"No space left on device: {path}")
        real(path, data)
    monkeypatch.setattr(store, "atomic_write_bytes", failing)
    with pytest.raises(OSError, match="No space left on device: .*last.pt"):
        h.train_run(**TINY, epochs=2, snapshot_epochs=(2,), runs_dir=tmp_path, progress=False)
    run_dir = next(tmp_path.iterdir())
    assert not (run_dir / "metrics.json").exists()  # never marked finished
    assert not (run_dir / "history.csv").exists()  # history.csv is not written ahead of its checkpoint


SCRIPT = textwrap.dedent("""
    import sys, time
    import helpers as h
    h.train_run(**eval(sys.argv[2]), runs_dir=sys.argv[1], progress=False, on_epoch=lambda row: time.sleep(0.3))
""")


def _epochs_on_disk(root: Path) -> int:
    try:
        return len(pd.read_csv(next(root.glob("*/history.csv"))))
    except (StopIteration, pd.errors.EmptyDataError, FileNotFoundError):
        return 0


def test_kill_9_mid_run_resumes_to_the_uninterrupted_history(tmp_path):
    cfg = dict(TINY, epochs=5, snapshot_epochs=(5,))
    env = {**os.environ, "PYTHONPATH": str(Path(h.__file__).parents[1])}
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(tmp_path / "cut"), repr(cfg)], env=env)
    try:
        deadline = time.time() + 240
        while _epochs_on_disk(tmp_path / "cut") < 2:
            assert proc.poll() is None, "the training subprocess ended before it could be killed"
            assert time.time() < deadline, "no second epoch on disk within 4 minutes"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    seen_on_disk = _epochs_on_disk(tmp_path / "cut")
    run_dir = next((tmp_path / "cut").iterdir())
    assert not (run_dir / "metrics.json").exists(), "killed after it finished: the test proved nothing"
    resumed_epochs = []
    resumed = h.train_run(**cfg, runs_dir=tmp_path / "cut", progress=False, on_epoch=resumed_epochs.append)
    # history.csv is written after last.pt, so the checkpoint holds at least the epochs history.csv showed
    assert resumed_epochs[0]["epoch"] >= seen_on_disk + 1 >= 3
    whole = h.train_run(**cfg, runs_dir=tmp_path / "whole", progress=False)
    pd.testing.assert_frame_equal(resumed.history[COMPARE], whole.history[COMPARE])
