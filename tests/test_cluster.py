"""helpers.core.cluster through submitit's local executor: real subprocess jobs on the code path a Slurm task runs.

A job sent the time-limit signal mid-run is requeued and ends with an uninterrupted run's history; a failing
job is named with its log's tail while the others finish; runs in the store are not submitted; bad input is
one `error:` line before anything is submitted.
"""
import contextlib
import io
import os
import re
import signal
import time

import pandas as pd
import pytest
import torch

import helpers as h
from helpers.tools import bench, cli
from helpers.core import cluster
from helpers.core.cluster import ClusterSettings
from helpers.core.data import data_identity
from helpers.core.runs import run_id
from helpers.core.sweep import SweepError

COMPARE = ["epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc"]
TINY = dict(profile="smoke", train_size=100, test_size=20, batch_size=50)
WAIT_S = 120  # the most a test waits for a local job


def _cfg(**changes):
    return h.make_config(**{**TINY, "epochs": 1, **changes})


def _rid(cfg):
    return run_id(cfg.identity(), data_identity(cfg.data_dir, cfg.train_size, cfg.test_size, cfg.seed))


def local_executor(root):
    """A local executor as --cluster local makes it; its 5-minute limit never fires on its own here."""
    return cluster.make_executor(ClusterSettings(kind="local", gpus_per_task=0, time_min=5), root)


def _wait_for(what, predicate, timeout=WAIT_S):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _epochs_on_disk(path):
    history = path / "history.csv"
    return max(0, len(history.read_text().splitlines()) - 1) if history.exists() else 0


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread in the tasks (they inherit $RUN_THREADS) and here: on a loaded 2-core machine two
    threads made an epoch several times slower; and a history is compared only at the same thread count."""
    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RUN_THREADS", "1")
        torch.set_num_threads(1)
        yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def requeued(tmp_path_factory):
    """A 5-epoch run whose job gets the time-limit signal after its first epoch, and the same run uninterrupted.

    The local executor's controller sends its task SIGUSR2 `signal_delay_s` before `timeout_min`, as Slurm does
    (`--signal=USR2@90`); with a limit under 10 minutes submitit counts that signal as a time-out. The test
    sends the same signal itself once an epoch is on disk, so that it lands mid-run however loaded the machine.
    """
    cfg = _cfg(epochs=5, seed=3)
    reference = h.train_many([cfg], runs_dir=tmp_path_factory.mktemp("reference"), progress=False)[0]
    root = tmp_path_factory.mktemp("store")
    [job] = cluster.submit([(_rid(cfg), cfg)], local_executor(root), root)
    pid = _wait_for("the task to start training", lambda: re.search(r"\(pid (\d+),", job.stdout() or ""))
    _wait_for("the first epoch on disk", lambda: _epochs_on_disk(root / _rid(cfg)) >= 1)
    os.kill(int(pid.group(1)), signal.SIGUSR2)
    # Meanwhile the same run is asked for again: it is not sent again, but waited for.
    with contextlib.redirect_stdout(io.StringIO()) as again:
        h.train_many([cfg], runs_dir=root, executor=local_executor(root))
    _wait_for("the job to finish", job.done)  # the run is finished; its result is being written
    return cfg, root, job, reference, again.getvalue()


def test_a_job_at_its_time_limit_is_requeued_and_resumes_to_the_uninterrupted_history(requeued):
    cfg, root, job, reference, _ = requeued
    log = job.stdout()
    assert job.result()["run"] == _rid(cfg), log
    assert "this job is timed-out" in log and "Requeued job" in log, log
    stopped = int(re.search(r"interrupted after epoch (\d+); requeued", log).group(1))
    assert 1 <= stopped < cfg.epochs, log  # mid-run
    assert log.count(f"[{_rid(cfg)} none seed 3] training on") == 2, log  # the first attempt, and the requeued one
    run = h.load_run(root / _rid(cfg))
    pd.testing.assert_frame_equal(run.history[COMPARE], reference.history[COMPARE])


def test_a_run_a_queued_job_trains_is_waited_for_not_sent_again(requeued):
    cfg, root, job, _, again = requeued
    label = f"[{_rid(cfg)} none seed 3]"
    assert f"{label} is already queued or running as job {job.job_id}; not sent again" in again, again
    assert f"{label} finished (job {job.job_id})" in again and "submitted" not in again, again
    # one job, ever (the local executor's controller also leaves an empty folder named `%j`)
    assert [p.name for p in (root / ".submitit").iterdir() if p.name != "%j"] == [job.job_id]


def test_runs_in_the_store_are_loaded_and_not_submitted(requeued, capsys):
    cfg, root, _, reference, _ = requeued
    folder = root / ".submitit"
    before = sorted(p.name for p in folder.iterdir())
    runs = h.train_many([cfg, cfg], runs_dir=root, executor=local_executor(root))
    out = capsys.readouterr().out
    assert [r.id for r in runs] == [_rid(cfg)] * 2
    assert "submitted" not in out and out.count("loaded from the store") == 1, out
    assert sorted(p.name for p in folder.iterdir()) == before  # no job files were written


def test_the_command_line_goes_through_the_same_path(requeued, monkeypatch, capsys):
    cfg, root, _, _, _ = requeued
    monkeypatch.setenv("RUNS_DIR", str(root))
    args = ["train", "--profile", "smoke", "--train-size", "100", "--test-size", "20", "--batch-size", "50",
            "--epochs", "5", "--seed", "3", "--seeds", "1", "--cluster", "local"]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert f"[{_rid(cfg)} none seed 3] loaded from the store" in out and "submitted" not in out, out


def test_a_failing_job_is_named_with_its_log_tail_and_the_others_finish(tmp_path, capsys):
    good, corrupt = _cfg(seed=1), _cfg(seed=2)
    (tmp_path / _rid(corrupt)).mkdir()
    (tmp_path / _rid(corrupt) / "last.pt").write_bytes(b"not a checkpoint")  # the task fails on resume
    with pytest.raises(SweepError) as err:
        h.train_many([corrupt, good, good], runs_dir=tmp_path, executor=local_executor(tmp_path))
    out, text = capsys.readouterr().out, str(err.value)
    assert text.startswith("1 of 3 run(s) failed; the others finished"), text
    label = f"[{_rid(corrupt)} none seed 2]"
    assert re.search(re.escape(label) + r" failed: job \d+ failed: .*CorruptRunError: .*last\.pt", text), text
    assert "|   File " in text and '"seed": 2' in text, text  # the log's tail, and the run's config
    assert err.value.expected
    assert f"{label} FAILED: job" in out and "_log.err" in out, out
    assert out.count(f"[{_rid(good)} none seed 1] submitted as job") == 1, out  # the duplicate is sent once
    assert h.load_run(tmp_path / _rid(good)).history["epoch"].tolist() == [1]  # the good run finished


# ---- bad input: one error line, before anything is submitted --------------------------------------------

@pytest.fixture
def nothing_submitted(monkeypatch):
    """Record submissions, and fail the test if one happens."""
    calls = []
    monkeypatch.setattr(cluster, "submit", lambda *a, **k: calls.append(a) or [])
    return calls


def _fake_sbatch(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sbatch", "srun"):
        (bin_dir / tool).write_text("#!/bin/sh\nexit 1\n")
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))


CLI = ["train", "--profile", "smoke", "--epochs", "1", "--train-size", "100", "--test-size", "20"]


@pytest.mark.parametrize("args, env, expected", [
    (["--cluster", "pbs"], {}, "parameter 'cluster' = 'pbs' is invalid; valid: slurm | local"),
    (["--cluster", "local", "--time-min", "0"], {}, "parameter 'time_min' = '0' is invalid; valid: a positive integer"),
    (["--cluster", "local"], {"CLUSTER_CPUS_PER_TASK": "many"},
     "parameter 'CLUSTER_CPUS_PER_TASK' (environment) = 'many' is invalid; valid: a positive integer"),
    (["--study", "--cluster", "local"], {}, "parameter 'epochs' cannot be combined with --study; valid with "
     "--study: --profile, --seed, --seeds, --data-dir, --device"),
    (["--time-min", "30"], {}, "parameter 'time_min' needs --cluster; valid: add --cluster slurm or --cluster local"),
])
def test_bad_cluster_options_are_one_error_line(nothing_submitted, monkeypatch, capsys, args, env, expected):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert cli.main([*CLI, *args]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"error: {expected}"]
    assert nothing_submitted == []


def test_slurm_without_sbatch_is_one_error_line(nothing_submitted, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    assert cli.main([*CLI, "--cluster", "slurm"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: parameter 'cluster' = 'slurm' is invalid here: no `sbatch`"), err
    assert nothing_submitted == []


def test_a_node_local_run_store_is_one_error_line(nothing_submitted, tmp_path, monkeypatch, capsys):
    _fake_sbatch(tmp_path, monkeypatch)
    monkeypatch.setenv("RUNS_DIR", str(tmp_path / "runs"))  # tmp_path is under /tmp
    assert cli.main([*CLI, "--cluster", "slurm"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: parameter 'RUNS_DIR' = '{(tmp_path / 'runs').resolve()}' "
                                               "is invalid for --cluster slurm: it is under /tmp"), err
    assert nothing_submitted == []


def test_slurm_asks_for_a_profile(nothing_submitted, tmp_path, monkeypatch, capsys):
    _fake_sbatch(tmp_path, monkeypatch)
    monkeypatch.delenv("PROFILE")
    assert cli.main(["train", "--epochs", "1", "--cluster", "slurm"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "parameter 'profile' = 'auto' is invalid with --cluster slurm" in err[0], err


def test_settings_come_from_options_then_environment_then_defaults():
    s = ClusterSettings.from_env({"CLUSTER_PARTITION": "gpu", "CLUSTER_TIME_MIN": "240"}, kind="slurm", time_min="60")
    assert (s.partition, s.time_min, s.cpus_per_task, s.gpus_per_task) == ("gpu", 60, 8, 1)
    assert cluster.node_local_reason("/dev/shm/runs") and cluster.node_local_reason("/home/x/runs") is None


def test_the_study_and_its_wall_time_on_n_gpus():
    configs = cli.study_configs("full", 3)
    assert len(configs) == 22 and len({_rid(c) for c in configs}) == 22
    assert sum(c.recipe == "fast" for c in configs) == 3 and sum(c.stem == "cifar" for c in configs) == 1
    assert bench.wall_seconds([5, 4, 3, 3, 1], 2) == 8 and bench.wall_seconds([5, 4], 8) == 5
    per_epoch, n = bench.reference_seconds_per_epoch()
    assert n >= 1 and per_epoch > 0
