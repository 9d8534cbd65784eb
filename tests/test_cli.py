"""`python -m helpers.tools.cli train`: comma-separated values and --seeds expand into runs for train_many; bad values
get one error line naming the parameter, the value and the choices, exit code 2, before any work; summary."""
import pytest

import helpers as h
from helpers.tools import cli
from helpers.core import sweep
from helpers.core.recipes import RECIPES
from helpers.core.sweep import Failure, SweepError

TINY = ["--profile", "smoke", "--epochs", "1", "--train-size", "200", "--test-size", "50", "--batch-size", "100"]


@pytest.fixture
def no_training(monkeypatch):
    """Record what the CLI hands to train_many, and train nothing."""
    calls = []

    def fake(configs, *, jobs=None, **options):
        calls.append((configs, jobs))
        raise SweepError([Failure("[fake]", {}, "not trained in this test", expected=True)], len(configs))
    monkeypatch.setattr(sweep, "train_many", fake)
    return calls


def test_recipes_times_seeds_expand_in_order(no_training):
    assert cli.main(["train", *TINY, "--recipe", "none,crop", "--seeds", "3", "--jobs", "2"]) == 2
    (configs, jobs), = no_training
    assert [(c.recipe, c.seed) for c in configs] == [("none", 0), ("none", 1), ("none", 2),
                                                      ("crop", 0), ("crop", 1), ("crop", 2)]
    assert jobs == 2 and all(c.epochs == 1 and c.train_size == 200 for c in configs)


def test_seeds_default_to_the_profiles_and_start_at_seed():
    smoke = cli.expand_configs({"profile": "smoke", "seed": "5"})
    assert [c.seed for c in smoke] == [5, 6] == h.seed_list(5, None, "smoke")
    quick = cli.expand_configs({"profile": "quick", "recipe": "none,crop", "lr": "0.1,0.05"})
    assert [(c.recipe, c.lr, c.seed) for c in quick] == [("none", 0.1, 0), ("none", 0.05, 0),
                                                          ("crop", 0.1, 0), ("crop", 0.05, 0)]
    assert len(cli.expand_configs({"profile": "smoke", "recipe": "crop,crop"}, seeds=1)) == 1  # one run, once


@pytest.mark.parametrize("args, expected", [
    (["--recipe", "none,bogus"], f"parameter 'recipe' = 'bogus' is invalid; valid: {' | '.join(RECIPES)}"),
    (["--seeds", "0"], "parameter 'seeds' = '0' is invalid; valid: a positive integer"),
    (["--seeds", "two"], "parameter 'seeds' = 'two' is invalid; valid: a positive integer"),
    (["--jobs", "-1"], "parameter 'jobs' = '-1' is invalid; valid: a positive integer"),
    (["--lr", "0.1,"], "parameter 'lr' = '0.1,' is invalid; valid: one value or comma-separated values"),
    (["--lr", "0.1,fast"], "parameter 'lr' = 'fast' is invalid; valid: a value of type float"),
    (["--seed", "0,1"], "parameter 'seed' = '0,1' is invalid; valid: a value of type int"),
    (["--schedule", "step,linear"], "parameter 'schedule' = 'linear' is invalid; valid: step | onecycle | cosine"),
    (["--device", "tpu"], "parameter 'device' = 'tpu' is invalid; valid: auto | cpu | cuda"),
])
def test_bad_values_are_one_error_line_exit_2_before_any_work(no_training, capsys, args, expected):
    assert cli.main(["train", *TINY, *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {expected}"], err
    assert no_training == []  # nothing was handed to train_many


def test_missing_data_stops_every_run_before_work(no_training, tmp_path, capsys):
    assert cli.main(["train", "--profile", "quick", "--recipe", "none,crop", "--data-dir", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "parameter 'data_dir'" in err[0] and "no such folder" in err[0], err
    assert no_training == []


def test_failed_runs_are_one_line_each(monkeypatch, capsys):
    def two_fail(configs, **options):
        raise SweepError([Failure("[a none seed 0]", {}, "worker killed by signal 9: loading"),
                          Failure("[b crop seed 0]", {}, "worker exit code 2: error: CorruptRunError: x", expected=True)],
                         len(configs))
    monkeypatch.setattr(sweep, "train_many", two_fail)
    assert cli.main(["train", *TINY, "--recipe", "none,crop", "--seeds", "1"]) == 1  # a kill is not expected: 1
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: [a none seed 0] worker killed by signal 9: loading",
        "error: [b crop seed 0] worker exit code 2: error: CorruptRunError: x"]


def test_two_recipes_train_and_summary_lists_them(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RUNS_DIR", str(tmp_path))
    assert cli.main(["train", *TINY, "--recipe", "none,crop", "--seeds", "1"]) == 0
    out = capsys.readouterr().out
    runs = [line for line in out.splitlines() if line.startswith("Run(")]
    assert len(runs) == 2 and "recipe=none" in runs[0] and "recipe=crop" in runs[1], out
    assert out.count("finished: final test acc") == 2  # train_many's per-run status lines
    assert cli.main(["summary"]) == 0
    table = capsys.readouterr().out
    assert sorted(line.split()[1] for line in table.splitlines()[1:]) == ["crop", "none"], table
