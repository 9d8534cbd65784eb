"""train_many: concurrent runs (worker processes) give the histories sequential runs give, name every run in
the progress, name a failing run while the others finish, wait for a run another process holds, and
train duplicate configs once."""
import os
import shutil
import stat
import subprocess

import pandas as pd
import pytest

import helpers as h
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


@pytest.mark.parametrize("jobs", [None, 2])
def test_a_run_held_by_another_process_is_waited_for_then_loaded(sequential, tmp_path, monkeypatch, capsys, jobs):
    finished = sequential[0]
    folder = tmp_path / finished.id
    folder.mkdir()
    holder = subprocess.Popen(["sleep", "60"])  # a live process that "trains" the run
    (folder / "lock").write_text(str(holder.pid))
    waited, real_wait = [], sweep.wait_for_lock

    def other_process_finishes(path, poll_s=2.0):
        """Stands in for the wait: the holder finishes the run and lets go of it meanwhile."""
        waited.append(path)
        for name in ("config.json", "history.csv", "env.json", "metrics.json"):
            shutil.copy(finished.path / name, folder / name)
        holder.kill()
        holder.wait()
        real_wait(path, poll_s=0.1)  # returns: the holder is dead
    monkeypatch.setattr(sweep, "wait_for_lock", other_process_finishes)
    monkeypatch.setattr(train_mod, "train_epoch", _boom)  # in process: loading must not train
    runs = h.train_many([_cfg(recipe="none")], runs_dir=tmp_path, jobs=jobs)
    assert waited == [folder]
    assert f"[{finished.id} none seed 0] is being trained by another process; waiting for it" in capsys.readouterr().out
    pd.testing.assert_frame_equal(runs[0].history, finished.history)


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
    monkeypatch.setenv("RUNS_USED_LOG", "/tmp/log")
    assert "RUN_THREADS" not in sweep._worker_env(2, cuda=False)  # same threads, same sums, same history
    env = sweep._worker_env(2, cuda=True)
    assert env["RUN_THREADS"] == str(max(1, (os.cpu_count() or 1) // 2))
    assert "RUNS_USED_LOG" not in env  # train_many notes the runs itself, in the configs' order
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(project_root())  # workers import this checkout
