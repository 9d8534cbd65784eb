"""Notebook 05: the fast recipe against the report's protocol across seeds, and its verdict rows."""
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

import helpers as h  # noqa: E402
from helpers.notebook import faster  # noqa: E402
from helpers.notebook import results as R  # noqa: E402
from fakes import seeds, text  # noqa: E402


def fast_runs(values, epochs=2):
    """Fast runs whose curve is on a validation split and whose test score is held out."""
    runs = seeds([v - 1 for v in values], recipe="fast", epochs=epochs)
    for r, v in zip(runs, values):
        r.metrics.update(eval_set="validation", heldout_test_acc=v)
        r.config["schedule"] = "onecycle"
    return runs


def test_speed_table_holds_spreads_the_held_out_score_and_each_seed():
    t = h.speed_table(seeds([80.0, 82.0], epochs=6), fast_runs([84.0, 84.4]), target=81.0)
    ref, fast = t.iloc[0], t.iloc[1]
    assert ref["test acc (%)"].values == (80.0, 82.0) and fast["test acc (%)"].values == (84.0, 84.4)
    assert fast["final curve acc (%)"].mean == pytest.approx(83.2) and fast["per-epoch curve on"] == "validation split"
    assert ref["minutes"].mean == 3.0 and fast["epochs"] == 2 and fast["schedule"] == "onecycle"
    assert ref["mean curve: first epoch ≥ 81.00%"] == 1  # the mean curve: 81, then 40 until the last epoch
    assert h.speed_table(seeds([80.0, 82.0]), fast_runs([84.0]), target=90.0).iloc[0]["minutes to it"] is None
    per_seed = h.speed_table(seeds([80.0, 82.0]), fast_runs([84.0, 84.4]), per_seed=True)
    assert per_seed["seed 1 test (%)"].tolist() == [82.0, 84.4]


def test_plot_speed_draws_the_mean_and_a_band_per_experiment():
    fig = h.plot_speed(seeds([80.0, 82.0], epochs=4), fast_runs([84.0, 84.4], epochs=4))
    ax = fig.axes[0]
    means = {ln.get_label(): ln.get_ydata() for ln in ax.get_lines()}
    assert list(means["report protocol (test), mean of 2"]) == [81.0, 40.0, 40.0, 81.0]
    assert len(ax.collections) == 2  # one min–max band per experiment
    plt.close(fig)


FULL = h.make_config("full", recipe="crop", data_dir="/f")
QUICK = h.make_config("quick", recipe="crop", data_dir="/f")


def verdicts_of(ref_runs, fast, reference=R.NO_REFERENCE, cfg=FULL):
    return [v.row() for v in h.speed_verdicts(h.speed_table(ref_runs, fast), cfg, reference)]


def test_the_two_experiments_are_compared_with_welch():
    protocol, report = verdicts_of(seeds([50.0, 50.4], epochs=8), fast_runs([55.0, 55.4]))
    assert (protocol["A"], protocol["B"]) == ("fast 55.20 ± 0.28% (n=2)", "protocol 50.20 ± 0.28% (n=2)")
    assert protocol["verdict"] == "differs (p = 0.003), higher" and protocol["rule"] == "Welch t, df 2.0"
    assert report["B"] == "the report 83.98% (n=1)" and report["verdict"] == "not judged"
    quick = verdicts_of(seeds([50.0, 50.4], epochs=8), fast_runs([55.0, 55.4]), cfg=QUICK)
    assert len(quick) == 1 and quick[0] == protocol  # the report's figure is at another scale: left out


def test_the_report_figure_is_judged_against_the_reference_spread():
    ref = R.Reference("full", 0.3, 5)
    reaches = verdicts_of(seeds([82.0], epochs=8), fast_runs([86.0]), ref)[1]
    assert reaches["verdict"].endswith(", higher") and reaches["rule"] == "reference sd 0.30, df 5"
    misses = verdicts_of(seeds([82.0], epochs=8), fast_runs([82.0]), ref)
    assert misses[1]["verdict"].endswith(", lower") and misses[1]["difference"] == "-1.98 points"
    assert misses[0]["verdict"].startswith("consistent")
    close = verdicts_of(seeds([82.0], epochs=8), fast_runs([83.8]), ref)[1]
    assert close["verdict"].startswith("consistent (p = 0.6") and close["difference"] == "-0.18 points"


def test_one_seed_without_a_reference_spread_is_not_judged():
    out = verdicts_of(seeds([50.0], epochs=8), fast_runs([55.0]), R.Reference("full", math.nan))
    assert [r["verdict"] for r in out] == ["not judged", "not judged"]


def test_default_validation_is_a_tenth_with_a_floor_and_never_most_of_the_set():
    assert faster.default_validation(3000) == 300 and faster.default_validation(500) == 100
    assert faster.default_validation(None) == 5000
    assert faster.default_validation(100) == 50  # the floor would hold out every image, which config rejects
