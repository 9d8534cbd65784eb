"""train_many: concurrent runs (one submitit local job each) give the histories sequential runs give, name every
run in the progress, name a failing or killed run while the others finish, wait for a run another process holds
(up to a timeout), never hang when the job logs cannot be written, and train duplicate configs once."""
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

import helpers as h
from helpers.core import runs as store
from helpers.core import cluster, sweep
from helpers.core import train as train_mod
from helpers.core.data import data_identity
from helpers.core.runs import run_id
from helpers.core.sweep import SweepError, resolve_jobs

COMPARE = ["epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc"]
TINY = dict(profile="smoke", train_size=200, test_size=50, epochs=2, batch_size=100)


def _cfg(**changes):
    return h.make_config(**{**TINY, **changes})


def _rid(cfg):
    return run_id(cfg.identity(), data_identity(cfg.data_dir, cfg.train_size, cfg.test_size, cfg.seed))


@pytest.fixture(scope="module")
def sequential(tmp_path_factory):
    """Two runs trained one after another in this process: the reference histories."""
    root = tmp_path_factory.mktemp("sequential")
    return h.train_many([_cfg(recipe="none"), _cfg(recipe="crop")], runs_dir=root, progress=False)


def test_concurrent_runs_equal_sequential_runs_and_progress_names_each(sequential, tmp_path, capsys):
    configs = [_cfg(recipe="none"), _cfg(recipe="crop"), _cfg(recipe="none")]  # the third duplicates the first
    runs = h.train_many(configs, runs_dir=tmp_path, jobs=2)
    out = capsys.readouterr().out
    assert [r.id for r in runs] == [sequential[0].id, sequential[1].id, sequential[0].id]
    for got, want in zip(runs, sequential):
        pd.testing.assert_frame_equal(got.history[COMPARE], want.history[COMPARE])
    for run, recipe in zip(runs[:2], ("none", "crop")):
        label = f"[{run.id} {recipe} seed 0]"
        assert out.count(f"{label} submitted as job") == 1, out  # the duplicate trained once
        assert f"{label} training on" in out, out  # forwarded from the job's log, like its epochs
        for e in (1, 2):
            assert f"{label} epoch   {e}/2" in out, out
        assert re.search(re.escape(label) + rf" finished \(job \d+, .+\): final test acc {run.final_acc:.2f}%", out), out
    # a second call loads every run from the store and submits no job
    again = h.train_many(configs, runs_dir=tmp_path, jobs=2)
    out = capsys.readouterr().out
    assert "submitted" not in out and out.count("loaded from the store") == 2, out
    assert [r.id for r in again] == [r.id for r in runs]


def test_failing_runs_are_named_and_the_others_finish(tmp_path):
    good = _cfg(seed=1, epochs=1, snapshot_epochs=(1,))
    corrupt = _cfg(seed=2, epochs=1, snapshot_epochs=(1,))
    (tmp_path / _rid(corrupt)).mkdir()
    (tmp_path / _rid(corrupt) / "last.pt").write_bytes(b"not a checkpoint")  # the worker fails on resume
    missing = _cfg(profile="quick", data_dir=str(tmp_path / "no-such-folder"))
    with pytest.raises(SweepError) as err:
        h.train_many([corrupt, missing, good], runs_dir=tmp_path, jobs=2, progress=False)
    text = str(err.value)
    assert text.startswith("2 of 3 run(s) failed; the others finished"), text
    assert re.search(re.escape(f"[{_rid(corrupt)} none seed 2] failed: job ") + r"\d+ failed: .*CorruptRunError", text), text
    assert "last.pt" in text and '"seed": 2' in text  # names the file, and the run's config
    assert "no-such-folder" in text and "DataError" in text
    assert err.value.expected  # both are expected kinds (the CLI exits 2 for them)
    assert h.load_run(tmp_path / _rid(good)).history["epoch"].tolist() == [1]  # the good run finished


def _in_job_log(root, pattern, timeout=240):
    """Return the first match of `pattern` in the logs of the jobs under `root`, once a job prints it."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for log in root.glob(".submitit/*/*_log.out"):
            found = re.search(pattern, log.read_text())
            if found:
                return found
        time.sleep(0.1)
    raise AssertionError(f"no job printed {pattern!r}")


def test_a_killed_run_is_named_and_the_others_finish(tmp_path):
    killed, good = _cfg(seed=3), _cfg(seed=4, epochs=1)
    result = {}
    thread = threading.Thread(target=lambda: result.update(error=_sweep([killed, good], tmp_path)), daemon=True)
    thread.start()
    pid = _in_job_log(tmp_path, re.escape(f"[{_rid(killed)} none seed 3]") + r" training on .* \(pid (\d+),").group(1)
    os.kill(int(pid), signal.SIGKILL)  # as running out of memory, or kill -9, would
    thread.join(240)
    err = result.get("error")
    assert isinstance(err, SweepError) and str(err).startswith("1 of 2 run(s) failed"), err
    assert re.search(re.escape(f"[{_rid(killed)} none seed 3] failed: job ") + r"\d+ ended without a result \(killed", str(err)), err
    assert not err.expected
    assert h.load_run(tmp_path / _rid(good)).history["epoch"].tolist() == [1]


def _sweep(configs, root):
    """Return the error of train_many(configs, jobs=2), or None."""
    try:
        h.train_many(configs, runs_dir=root, jobs=2, progress=False)
    except BaseException as e:  # noqa: BLE001 - returned to the test
        return e


def _hold(lock: Path) -> subprocess.Popen:
    """Start a process that holds the run's flock, as another trainer would; return once it holds it."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, os, sys, time; "
                               "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); fcntl.flock(fd, fcntl.LOCK_EX); "
                               "print('held', flush=True); time.sleep(600)", str(lock)], stdout=subprocess.PIPE)
    assert holder.stdout.readline() == b"held\n"
    return holder


def _copy_run(run, folder):
    """Copy a finished run's records (not its checkpoints) into `folder`, as the process training it would leave them."""
    for f in run.path.iterdir():
        if f.suffix in (".json", ".csv"):
            shutil.copy(f, folder / f.name)


def test_a_run_held_by_another_process_is_waited_for_then_loaded(sequential, tmp_path, monkeypatch, capsys):
    finished = sequential[0]
    folder = tmp_path / finished.id
    folder.mkdir()
    holder = _hold(folder / "lock")  # a live process that "trains" the run
    waited, real_wait = [], store.wait_unlocked

    def other_process_finishes(path, timeout):
        """Stands in for the wait: the holder finishes the run and lets go of it meanwhile."""
        waited.append((path, timeout))
        _copy_run(finished, folder)
        holder.kill()
        holder.wait()
        real_wait(path, timeout=10)  # returns: the kernel dropped the dead holder's lock
    monkeypatch.setattr(store, "wait_unlocked", other_process_finishes)
    monkeypatch.setattr(train_mod, "train_epoch", _boom)  # in process: loading must not train
    runs = h.train_many([_cfg(recipe="none")], runs_dir=tmp_path)
    assert waited == [(folder, sweep.LOCK_WAIT_S)]
    assert f"[{finished.id} none seed 0] is being trained by another process; waiting for it" in capsys.readouterr().out
    pd.testing.assert_frame_equal(runs[0].history, finished.history)


def test_a_job_waits_for_a_run_another_process_holds_then_loads_it(sequential, tmp_path, capsys):
    finished = sequential[0]
    folder = tmp_path / finished.id
    folder.mkdir()
    holder = _hold(folder / "lock")
    result = {}
    thread = threading.Thread(target=lambda: result.update(runs=h.train_many([_cfg(recipe="none")], runs_dir=tmp_path,
                                                                             jobs=2)), daemon=True)
    thread.start()
    _in_job_log(tmp_path, "is being trained by another process; waiting for it")
    _copy_run(finished, folder)  # the other process finishes the run and ends
    holder.kill()
    holder.wait()
    thread.join(240)
    assert f"[{finished.id} none seed 0] is being trained by another process; waiting for it" in capsys.readouterr().out
    pd.testing.assert_frame_equal(result["runs"][0].history, finished.history)  # loaded (same seconds), not retrained


def test_the_wait_for_a_held_run_ends_at_its_timeout_with_a_clear_error(tmp_path, monkeypatch):
    cfg = _cfg(seed=9)
    holder = _hold(tmp_path / _rid(cfg) / "lock")
    monkeypatch.setenv("RUN_LOCK_WAIT", "0.5")
    try:
        with pytest.raises(SweepError) as err:
            h.train_many([cfg], runs_dir=tmp_path, progress=False)
    finally:
        holder.kill()
    assert f"RunLockedError: {tmp_path / _rid(cfg)} is being trained by another process after waiting 0.5 s" \
        in str(err.value), str(err.value)
    with pytest.raises(ValueError, match="'RUN_LOCK_WAIT' \\(environment\\) = 'soon' is invalid; valid: seconds"):
        monkeypatch.setenv("RUN_LOCK_WAIT", "soon")
        store.lock_wait_s()


def test_job_logs_that_cannot_be_written_end_the_sweep_with_a_clear_error(tmp_path):
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / ".submitit").write_text("not a folder")  # where the jobs' logs would go
    err = _sweep([_cfg(seed=7), _cfg(seed=8)], tmp_path / "runs")
    assert isinstance(err, OSError) and str(tmp_path / "runs" / ".submitit") in str(err), err


def test_a_run_that_finishes_corrupt_is_reported_and_the_others_finish(tmp_path, monkeypatch):
    corrupt, good = _cfg(seed=5), _cfg(seed=6, epochs=1)
    rid, real_load = _rid(corrupt), store.load_run

    def corrupted_on_disk(path):
        """The corrupt run's job finished; then its files broke on disk before this process loaded it."""
        if path.name == rid:
            for f in path.glob("*.json"):
                f.write_text("{not json")
        return real_load(path)
    monkeypatch.setattr(store, "load_run", corrupted_on_disk)
    err = _sweep([corrupt, good], tmp_path / "runs")
    assert isinstance(err, SweepError), err
    assert str(err).startswith("1 of 2 run(s) failed; the others finished"), str(err)
    assert f"[{rid} none seed 5] failed: CorruptRunError: {tmp_path / 'runs' / rid}/" in str(err), str(err)
    assert real_load(tmp_path / "runs" / _rid(good)).history["epoch"].tolist() == [1]


def _boom(*a, **k):
    raise AssertionError("trained a run that another process was training")


def test_jobs_default_one_on_cpu_on_cuda_what_free_memory_and_cores_allow_bad_values_named(monkeypatch):
    monkeypatch.delenv("RUN_JOBS", raising=False)
    assert resolve_jobs(None, 5, cuda=False) == 1
    gib = 2**30
    assert resolve_jobs(None, 5, cuda=True, free_bytes=139 * gib, cpus=16) == 5          # all pending runs
    assert resolve_jobs(None, 30, cuda=True, free_bytes=139 * gib, cpus=64) == 139 * gib // sweep.RUN_GPU_BYTES
    assert resolve_jobs(None, 30, cuda=True, free_bytes=22 * gib, cpus=16) == 22 * gib // sweep.RUN_GPU_BYTES
    assert resolve_jobs(None, 30, cuda=True, free_bytes=139 * gib, cpus=6) == 6             # one per CPU core
    assert resolve_jobs(None, 30, cuda=True, free_bytes=gib, cpus=16) == 1                  # too little: one at a time
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda: (20 * gib, 80 * gib))             # read when not given
    assert resolve_jobs(None, 30, cuda=True, cpus=16) == 20 * gib // sweep.RUN_GPU_BYTES
    assert resolve_jobs(3, 30, cuda=False) == 3
    monkeypatch.setenv("RUN_JOBS", "4")
    assert resolve_jobs(None, 30, cuda=True, free_bytes=gib) == 4 and resolve_jobs(2, 30, cuda=True) == 2
    monkeypatch.setenv("RUN_JOBS", "lots")
    with pytest.raises(h.ConfigError, match=r"'RUN_JOBS' \(environment\) = 'lots' is invalid; valid: a positive"):
        resolve_jobs(None, 2, cuda=True)
    with pytest.raises(h.ConfigError, match=r"'jobs' = 0 is invalid; valid: None or a positive integer"):
        resolve_jobs(0, 2, cuda=False)
    with pytest.raises(h.ConfigError, match=r"'configs' holds 'crop'"):
        h.train_many(["crop"])


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_concurrent_runs_share_cpu_threads_only_on_cuda(tmp_path, monkeypatch, device):
    monkeypatch.setattr(train_mod, "resolve_device", lambda name: torch.device(device))
    calls = []
    monkeypatch.setattr(cluster, "local_executor", lambda root, cuda: calls.append(("executor", cuda)) or "ex")
    monkeypatch.setattr(cluster, "run_jobs", lambda pending, ex, root, say, done, failures, at_once, threads, wait:
                        calls.append((ex, len(pending), at_once, threads)) or True)
    with pytest.raises(KeyError):  # nothing trained: the fake run_jobs loads nothing
        h.train_many([_cfg(seed=1), _cfg(seed=2)], runs_dir=tmp_path, jobs=2, progress=False)
    threads = max(1, (os.cpu_count() or 1) // 2) if device == "cuda" else None  # CPU: same threads, same sums
    assert calls == [("executor", device == "cuda"), ("ex", 2, 2, threads)]
