"""train_many: concurrent runs (worker processes) give the histories sequential runs give, name every run in
the progress, name a failing run while the others finish, wait for a run another process holds (up to a
timeout), never hang on a worker's log, and train duplicate configs once."""
import os
import shutil
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pandas as pd
import pytest

import helpers as h
from helpers import runs as store
from helpers import sweep
from helpers import train as train_mod
from helpers.data import data_identity
from helpers.project import project_root
from helpers.runs import run_id
from helpers.sweep import SweepError, resolve_jobs

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
        assert out.count(f"{label} started (worker") == 1, out  # the duplicate trained once
        for e in (1, 2):
            assert f"{label} epoch   {e}/2" in out, out
        assert f"{label} finished: final test acc {run.final_acc:.2f}%" in out, out
        assert (run.path / "train.log").exists()
    # a second call loads every run from the store and starts no worker
    again = h.train_many(configs, runs_dir=tmp_path, jobs=2)
    out = capsys.readouterr().out
    assert "started" not in out and out.count("loaded from the store") == 2, out
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
    assert f"[{_rid(corrupt)} none seed 2] failed: worker exit code 2: error: CorruptRunError" in text, text
    assert "last.pt" in text and '"seed": 2' in text  # names the file, and the run's config
    assert "no-such-folder" in text and "DataError" in text
    assert err.value.expected  # both are expected kinds (the CLI exits 2 for them)
    assert h.load_run(tmp_path / _rid(good)).history["epoch"].tolist() == [1]  # the good run finished


def test_a_killed_worker_is_named_with_its_signal(tmp_path, monkeypatch):
    script = tmp_path / "dies.sh"
    script.write_text("#!/bin/sh\necho 'loading data ...'\nkill -9 $$\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr(sweep.sys, "executable", str(script))  # every worker dies as if killed (OOM, kill -9)
    with pytest.raises(SweepError) as err:
        h.train_many([_cfg(seed=3), _cfg(seed=4)], runs_dir=tmp_path / "runs", jobs=2, progress=False)
    text = str(err.value)
    assert text.count("worker killed by signal 9: loading data ...") == 2, text
    assert not err.value.expected


def _hold(lock: Path) -> subprocess.Popen:
    """Start a process that holds the run's flock, as another trainer would; return once it holds it."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, os, sys, time; "
                               "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); fcntl.flock(fd, fcntl.LOCK_EX); "
                               "print('held', flush=True); time.sleep(600)", str(lock)], stdout=subprocess.PIPE)
    assert holder.stdout.readline() == b"held\n"
    return holder


@pytest.mark.parametrize("jobs", [None, 2])
def test_a_run_held_by_another_process_is_waited_for_then_loaded(sequential, tmp_path, monkeypatch, capsys, jobs):
    finished = sequential[0]
    folder = tmp_path / finished.id
    folder.mkdir()
    holder = _hold(folder / "lock")  # a live process that "trains" the run
    waited, real_wait = [], store.wait_unlocked

    def other_process_finishes(path, timeout):
        """Stands in for the wait: the holder finishes the run and lets go of it meanwhile."""
        waited.append((path, timeout))
        for name in ("config.json", "history.csv", "record.json"):
            shutil.copy(finished.path / name, folder / name)
        holder.kill()
        holder.wait()
        real_wait(path, timeout=10)  # returns: the kernel dropped the dead holder's lock
    monkeypatch.setattr(store, "wait_unlocked", other_process_finishes)
    monkeypatch.setattr(train_mod, "train_epoch", _boom)  # in process: loading must not train
    runs = h.train_many([_cfg(recipe="none")], runs_dir=tmp_path, jobs=jobs)
    assert waited == [(folder, sweep.LOCK_WAIT_S)]
    assert f"[{finished.id} none seed 0] is being trained by another process; waiting for it" in capsys.readouterr().out
    pd.testing.assert_frame_equal(runs[0].history, finished.history)


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


def _fake_worker(tmp_path, monkeypatch, body: str):
    """Make every worker the shell script `body` (its $4 is the run store, $5 the config as JSON)."""
    script = tmp_path / "worker.sh"
    script.write_text("#!/bin/sh\n" + body + "\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr(sweep.sys, "executable", str(script))


def _sweep_in_thread(configs, root, timeout=60):
    """Run train_many in a thread; return its error, failing the test if it is still waiting after `timeout`."""
    out = {}

    def target():
        try:
            h.train_many(configs, runs_dir=root, jobs=2, progress=False)
        except BaseException as e:  # noqa: BLE001 - returned to the test
            out["error"] = e
    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), f"the sweep still waits after {timeout} s"
    return out.get("error")


def test_an_unwritable_log_ends_that_run_with_a_clear_error(tmp_path, monkeypatch):
    _fake_worker(tmp_path, monkeypatch, "echo 'loading data ...'\nexec sleep 600")  # never ends by itself
    cfg = _cfg(seed=7)
    (tmp_path / "runs" / _rid(cfg) / "train.log").mkdir(parents=True)  # the log cannot be opened for writing
    err = _sweep_in_thread([cfg], tmp_path / "runs")
    assert isinstance(err, SweepError), err
    assert f"failed: could not write its log {tmp_path / 'runs' / _rid(cfg) / 'train.log'}: IsADirectoryError" \
        in str(err), str(err)


def test_an_error_in_the_log_pump_never_leaves_the_sweep_waiting(tmp_path, monkeypatch):
    _fake_worker(tmp_path, monkeypatch, "echo 'loading data ...'\nexec sleep 600")

    def broken(*a):
        raise RuntimeError("boom")
    monkeypatch.setattr(sweep, "_forward", broken)
    err = _sweep_in_thread([_cfg(seed=8), _cfg(seed=9)], tmp_path / "runs")
    assert isinstance(err, SweepError), err
    assert str(err).count("failed: its log pump failed: RuntimeError: boom") == 2, str(err)


def test_a_run_that_finishes_corrupt_is_reported_and_the_others_finish(tmp_path, monkeypatch):
    corrupt, good = _cfg(seed=5), _cfg(seed=6, epochs=1)
    rid = _rid(corrupt)
    script = (f"case \"$5\" in *'\"seed\": 5'*)\n"
              f"  mkdir -p \"$4/{rid}\"; echo '{{not json' > \"$4/{rid}/record.json\"; exit 0;;\n"
              f"esac\nexec {sys.executable} \"$@\"")
    _fake_worker(tmp_path, monkeypatch, script)  # the corrupt one "finishes" with a broken record.json
    err = _sweep_in_thread([corrupt, good], tmp_path / "runs", timeout=240)
    assert isinstance(err, SweepError), err
    assert str(err).startswith("1 of 2 run(s) failed; the others finished"), str(err)
    assert f"[{rid} none seed 5] failed: CorruptRunError: {tmp_path / 'runs' / rid}/" in str(err), str(err)
    assert h.load_run(tmp_path / "runs" / _rid(good)).history["epoch"].tolist() == [1]


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
    monkeypatch.setattr(sweep, "gpu_free_bytes", lambda: 20 * gib)                           # read when not given
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


def test_worker_env_shares_cpu_threads_only_on_cuda(monkeypatch):
    monkeypatch.delenv("RUN_THREADS", raising=False)
    assert "RUN_THREADS" not in sweep._worker_env(2, cuda=False)  # same threads, same sums, same history
    env = sweep._worker_env(2, cuda=True)
    assert env["RUN_THREADS"] == str(max(1, (os.cpu_count() or 1) // 2))
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(project_root())  # workers import this checkout
