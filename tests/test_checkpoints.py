"""Checkpoints: written in the background from a frozen snapshot, one file with its checksum inside, loaded
weights_only; a write error reaches the trainer; a full disk stops a run with one clear error, and it resumes."""
import errno
import hashlib
import io
from pathlib import Path

import pandas as pd
import pytest
import torch

import helpers as h
from helpers.core import runs as store

COMPARE = ["epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc"]
TINY = dict(profile="smoke", train_size=200, test_size=100, batch_size=50, recipe="crop_flip")
SMALLEST = dict(profile="smoke", train_size=32, test_size=16, batch_size=16, recipe="crop_flip")


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

    def failing(path, data, **kw):
        if Path(path).name == "last.pt":
            raise OSError(f"No space left on device: {path}")
        real(path, data, **kw)
    monkeypatch.setattr(store, "atomic_write_bytes", failing)
    with pytest.raises(OSError, match="No space left on device: .*last.pt"):
        h.train_run(**TINY, epochs=2, snapshot_epochs=(2,), runs_dir=tmp_path, progress=False)
    run_dir = next(tmp_path.iterdir())
    assert not (run_dir / "record.json").exists()  # never marked finished
    assert not (run_dir / "history.csv").exists()  # history.csv is not written ahead of its checkpoint


def test_checkpoint_and_checksum_are_one_file_loaded_weights_only(tmp_path):
    import numpy as np
    state = {"model": {"w": torch.arange(3.0)}, "epoch": np.int64(2), "history": ({"acc": np.float32(0.5)},),
             "mean": np.array([1.0, 2.0])}
    store.save_checkpoint(state, tmp_path / "last.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # no sidecar, no temporary file
    got = store.load_checkpoint(tmp_path / "last.pt")
    assert got["epoch"] == 2 and type(got["epoch"]) is int and type(got["history"][0]["acc"]) is float
    torch.testing.assert_close(got["mean"], torch.tensor([1.0, 2.0], dtype=torch.float64))
    data = bytearray((tmp_path / "last.pt").read_bytes())
    data[-10] ^= 0xFF
    (tmp_path / "last.pt").write_bytes(bytes(data))
    with pytest.raises(store.CorruptRunError, match="last.pt: checkpoint is corrupt .*does not match its header"):
        store.load_checkpoint(tmp_path / "last.pt")
    bn = torch.nn.BatchNorm1d(2).state_dict()
    store.save_checkpoint({"model": bn}, tmp_path / "bn.pt")
    assert store.load_checkpoint(tmp_path / "bn.pt")["model"]._metadata == bn._metadata  # module versions kept
    with pytest.raises(TypeError, match="tensors and plain types only; got .*Path"):
        store.save_checkpoint({"where": tmp_path}, tmp_path / "bad.pt")


def _header_over(path: Path, obj):
    """Write a checkpoint file whose header holds the right SHA-256 of torch.save's bytes of any object."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    path.write_bytes(store.CHECKPOINT_MAGIC + hashlib.sha256(buf.getvalue()).hexdigest().encode() + b"\n"
                     + buf.getvalue())


def test_a_file_without_its_checksum_header_is_corrupt_and_unplain_content_is_refused(tmp_path):
    buf = io.BytesIO()
    torch.save({"model": {"w": torch.ones(2)}, "epoch": 2}, buf)
    (tmp_path / "epoch002.pt").write_bytes(buf.getvalue())  # torch.save's bytes alone: no header
    with pytest.raises(store.CorruptRunError, match=r"epoch002.pt: checkpoint is corrupt .*does not match its header"):
        store.load_checkpoint(tmp_path / "epoch002.pt")
    _header_over(tmp_path / "odd.pt", {"model": {"w": torch.ones(2)}, "where": Path("x")})  # not plain: refused
    with pytest.raises(store.CorruptRunError, match="odd.pt: holds more than tensors and plain types"):
        store.load_checkpoint(tmp_path / "odd.pt")


def test_a_killed_writes_temporary_files_are_removed_when_the_run_is_opened(tmp_path):
    cfg = dict(SMALLEST, epochs=1)
    first = h.train_run(**cfg, runs_dir=tmp_path / "a", progress=False)
    run_dir = tmp_path / "b" / first.id
    run_dir.mkdir(parents=True)
    left = [run_dir / ".last.pt.4242.tmp", run_dir / ".history.csv.4242.tmp"]  # what a kill inside a write leaves
    for p in left:
        p.write_bytes(b"half a file")
    h.train_run(**cfg, runs_dir=tmp_path / "b", progress=False)
    assert not any(p.exists() for p in left)
    assert not list(run_dir.glob(".*.tmp"))


def test_a_full_disk_stops_the_run_with_one_clear_error_and_it_resumes(tmp_path, monkeypatch):
    cfg = dict(SMALLEST, epochs=3, snapshot_epochs=(3,))
    whole = h.train_run(**cfg, runs_dir=tmp_path / "whole", progress=False)
    real = store.atomic_write_bytes
    writes = []

    def disk_fills_at_epoch_2(path, data, **kw):
        writes.append(Path(path).name)
        if Path(path).name == "last.pt" and writes.count("last.pt") == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, data, **kw)
    monkeypatch.setattr(store, "atomic_write_bytes", disk_fills_at_epoch_2)
    root = tmp_path / "cut"
    with pytest.raises(store.StoreFullError) as err:
        h.train_run(**cfg, runs_dir=root, progress=False)
    msg = str(err.value)
    assert msg.startswith(f"the run store {root} is full (") and " free on its disk): run " in msg, msg
    assert "No space left on device writing last.pt" in msg and "resumes from its last checkpoint" in msg, msg
    assert not list(root.glob("*/.*.tmp"))  # the half-written file is gone
    monkeypatch.setattr(store, "atomic_write_bytes", real)  # space freed
    seen = []
    resumed = h.train_run(**cfg, runs_dir=root, progress=False, on_epoch=seen.append)
    assert [r["epoch"] for r in seen] == [2, 3]  # epoch 1 was kept
    pd.testing.assert_frame_equal(resumed.history[COMPARE], whole.history[COMPARE])
