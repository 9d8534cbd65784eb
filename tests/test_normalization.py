"""Notebook 03: the study across seeds, every branch of its conclusion, and the full-scale reading."""
import math
from pathlib import Path

import pytest
import torch

import helpers as h
from helpers import results as R
from fakes import seeds, text

CFG = h.make_config("quick", data_dir="/f", recipe="normalize")
FULL = h.make_config("full", data_dir="/f", recipe="normalize")
S = h.spread


def test_channel_stats_note_checks_the_constants():
    good = h.channel_stats_table(R.REPORT_MEAN, (0.2470, 0.2435, 0.2616))
    assert good["mean diff"].abs().max() == 0 and good["std diff"].tolist()[1] == pytest.approx(0.0005)
    assert "**the constants are right**" in text(h.channel_stats_note(good, 50_000, "folder"))
    bad = h.channel_stats_table((0.5, 0.5, 0.5), R.REPORT_STD)
    out = text(h.channel_stats_note(bad, 5000, "synthetic"))
    assert "**do not fit**" in out and "0.0535" in out and "synthetic" in out


def test_input_ranges_show_what_normalize_does():
    x = torch.tensor([0, 255], dtype=torch.uint8).repeat(1, 3, 16, 1)  # half black, half white
    t = h.input_ranges(x).set_index("test-time transform")
    raw, norm = t.iloc[0], t.iloc[1]
    assert (raw["min"], raw["max"]) == (0.0, 1.0)
    assert norm["min"] == pytest.approx(-0.4914 / 0.247, abs=1e-4)  # the red channel's lowest value
    assert norm["max"] == pytest.approx((1 - 0.4822) / 0.243, abs=1e-4)  # the green channel's highest


def test_evaluation_table_lists_each_evaluation():
    t = h.evaluation_table({"a": {"loss": 0.5, "acc": 80.0}, "b": {"loss": 3.0, "acc": 12.0}})
    assert t.values.tolist() == [["a", 0.5, 80.0], ["b", 3.0, 12.0]]


def study(**changes):
    """Two seeds per setting: a clear collapse, no repair by the larger lr."""
    base = dict(baseline=S([70.0, 70.4]), matched=S([71.0, 71.4]), mismatched=S([15.0, 15.4]),
                train_loss=S([0.01, 0.012]), fix_lr=0.5, fix_mismatched=S([20.0, 20.4]), fix_matched=S([66.0, 66.4]),
                fix_train_loss=S([0.2, 0.2]), mismatch_eval_acc=15.0, mismatch_curve_acc=15.0)
    return h.NormalizationStudy(**{**base, **changes})


def test_normalization_table_carries_the_spreads():
    t = h.normalization_table(study(), 0.1).set_index("setting")
    assert [s.mean for s in t["measured test acc (%)"]] == pytest.approx([70.2, 71.2, 15.2, 20.2, 66.2])
    assert t.loc["normalize, test without Normalize", "report test acc (%)"] == 30.0
    # The report does not say how its lr-0.5 run was tested: its 76.37% sits on both lr-0.5 rows, marked.
    for row in ("normalize, lr 0.5, test without Normalize", "normalize, lr 0.5, correct pipeline"):
        assert t.loc[row, "report test acc (%)"] == 76.37 and t.loc[row, "report's test transform"] == "not stated"
    assert math.isnan(t.loc["normalize, correct pipeline", "report test acc (%)"])
    assert t.loc["normalize, lr 0.5, correct pipeline", "final train loss"].mean == 0.2


def test_conclusion_supports_the_mismatch_when_only_the_mismatched_evaluation_collapses():
    out = text(h.normalization_conclusion(study(), CFG))
    assert "**The mismatch hypothesis is supported.**" in out
    assert "71.20 ± 0.28% (n=2)" in out and "15.20 ± 0.28% (n=2)" in out and "without **differs** from with (p < 0.001; n = 2 and 2)" in out
    assert "**Overfitting does not explain it.**" in out and "0.0110 ± 0.0014 (n=2)" in out
    assert "exactly the figure of the separate evaluation" in out
    assert "does **not** repair" in out and "profile `quick` does not reproduce" in out
    assert "worse in itself (a difference under the rule)" in out and "Not comparable" in out and f"*Rule*: {h.stats.RULE}." in out


def test_conclusion_says_so_when_the_collapse_is_not_resolved():
    out = text(h.normalization_conclusion(study(mismatched=S([65.0, 70.0]), mismatch_curve_acc=64.0), CFG))
    assert "**The measurements do not support the mismatch hypothesis here.**" in out
    assert "supported.**" not in out and "Overfitting does not explain" not in out
    assert "the two disagree" in out


def test_a_large_drop_with_one_seed_and_no_reference_spread_is_not_resolved():
    one = study(baseline=S([70.0]), matched=S([71.0]), mismatched=S([15.0]), fix_mismatched=S([20.0]),
                fix_matched=S([66.0]))
    out = text(h.normalization_conclusion(one, CFG))
    assert "do not support the mismatch hypothesis here" in out and "not judged" in out
    assert "no experiment here with two seeds" in out
    judged = text(h.normalization_conclusion(one, CFG, ref=R.Reference("quick", 1.0, 5)))
    assert "**The mismatch hypothesis is supported.**" in judged and "`report/reference/quick/`" in judged


def test_conclusion_partial_when_the_correct_pipeline_is_also_poor():
    out = text(h.normalization_conclusion(study(matched=S([50.0, 50.4])), CFG))
    assert "**Partly supported.**" in out and "normalize **differs** from the baseline (p < 0.001; n = 2 and 2): -20.00 points, lower" in out


def test_conclusion_reports_a_working_or_partial_fix_and_a_better_rate():
    fixed = text(h.normalization_conclusion(study(fix_mismatched=S([69.0, 69.4])), CFG))
    assert "does make the mismatched evaluation about as good" in fixed
    partial = text(h.normalization_conclusion(study(fix_mismatched=S([40.0, 40.4])), CFG))
    assert "partial, accidental repair" in partial
    better = text(h.normalization_conclusion(study(fix_matched=S([80.0, 80.4])), CFG))
    assert "better in itself" in better
    same = text(h.normalization_conclusion(study(fix_matched=S([70.0, 72.4])), CFG))
    assert "no improvement" in same


def test_in_the_full_profile_a_failed_fix_is_judged_against_the_report():
    out = text(h.normalization_conclusion(study(), FULL, ref=R.Reference("full", 0.5, 5)))
    assert "**below the report's** 76.37%" in out and "measured **differs** from the report (p < 0.001; n = 2 and 1)" in out
    assert "contradict" not in out
    assert "`report/reference/full/`" in out
    unjudged = text(h.normalization_conclusion(study(), FULL))  # two seeds against the report's one, no spread
    assert "below the report's" not in unjudged and "measured against the report" in unjudged and "not judged" in unjudged


def test_study_from_runs_reads_every_setting_per_seed():
    correct = seeds([71.0, 73.0], train_loss=0.02, recipe="normalize", raw=14.0)
    fixed = seeds([60.0, 62.0], lr=0.5, train_loss=0.3, recipe="normalize", raw=30.0)  # one run per seed, both ways
    s = h.NormalizationStudy.from_runs(seeds([70.0, 72.0]), correct, fixed, {"acc": 14.5})
    assert (s.baseline.mean, s.matched.mean, s.mismatched.values) == (71.0, 72.0, (14.0, 14.0))
    assert (s.fix_mismatched.values, s.fix_matched.mean, s.fix_lr) == ((30.0, 30.0), 61.0, 0.5)
    assert (s.mismatch_eval_acc, s.mismatch_curve_acc, s.train_loss.mean) == (14.5, 14.0, 0.02)
    assert h.scored(correct[1], normalize=True) == 73.0 and h.scored(correct[1], normalize=False) == 14.0
    with pytest.raises(ValueError, match="no evaluation without Normalize"):
        h.NormalizationStudy.from_runs(seeds([70.0]), seeds([71.0], recipe="normalize"), fixed)


# ---- at the report's scale -------------------------------------------------------------------------

def full_scale(matched=(78.39,), mismatched=(33.42,), fix_matched=(72.38,), fix_mismatched=(23.10,), sd=math.nan,
               measured_in=None):
    return h.FullScale(S(matched), S(mismatched), S(fix_matched), S(fix_mismatched),
                       R.Reference("full", sd, 4, measured_in))


def test_full_scale_with_one_seed_judges_by_the_borrowed_quick_spread_and_says_so():
    out = text(h.full_scale_conclusion(full_scale(sd=4.0, measured_in="quick")))
    supported, rest = out.split("*What the figures support.*")[1].split("(a hypothesis, not a fact)")
    assert "**The collapse is the train/test transform mismatch.**" in supported
    assert "**lr 0.5 does not turn the mismatched pipeline into 76.37%.**" in supported
    assert "(t = -7.95, df = 4.0, sd from the reference runs)" in supported  # se 4.0 * sqrt(2)
    assert "the report is **consistent with** that setting (p = 0.520; n = 1 and 1): +3.99 points" in rest
    assert "use the spread measured in `report/reference/quick/`" in rest and "an assumption" in rest
    out = text(h.full_scale_conclusion(full_scale(sd=30.0, measured_in="quick")))  # a spread too wide to judge
    assert "Under the rule, nothing yet" in out and "Whether the collapse is the train/test transform mismatch." in out


def test_full_scale_with_one_seed_and_no_spread_leaves_every_difference_open():
    out = text(h.full_scale_conclusion(full_scale()))
    supported, rest = out.split("*What the figures support.*")[1].split("(a hypothesis, not a fact)")
    assert "`report/reference/full/`" in out and "n=1 seed(s)" in out
    assert "Under the rule, nothing yet" in supported
    assert "78.39% (n=1) with Normalize at test time and 33.42% (n=1) without" in rest
    assert "≈30% is 3.42 points below their range (33.42%–33.42%)" in rest
    assert "Whether the collapse is the train/test transform mismatch." in rest
    assert "Whether lr 0.5 could turn the mismatched pipeline into the report's 76.37%." in rest
    assert "**with** Normalize, which here scores 72.38% (n=1)" in rest
    assert "inside their range (72.38%–78.39%) for the runs tested **with** Normalize" in rest
    assert "42.95 points above their range (23.10%–33.42%)" in rest
    assert "The seed-to-seed spread at this scale: the reference holds 1 seed(s)" in rest
    assert "even the hypothesis" not in out and "no experiment here with two seeds" in out


def test_full_scale_with_three_seeds_supports_the_mismatch_and_the_lr_finding_and_judges_the_hypothesis():
    out = text(h.full_scale_conclusion(full_scale((78.2, 78.4, 78.6), (33.0, 33.4, 33.8), (72.0, 72.4, 72.8),
                                                  (23.0, 23.1, 23.2), sd=0.4)))
    supported = out.split("*What the figures support.*")[1].split("(a hypothesis, not a fact)")[0]
    assert "**The collapse is the train/test transform mismatch.**" in supported
    assert "without **differs** from with (p < 0.001; n = 3 and 3)" in supported and "Welch t =" in supported
    assert "**lr 0.5 does not turn the mismatched pipeline into 76.37%.**" in supported
    assert "the report **differs** from them (p < 0.001; n = 1 and 3): +53.27 points, higher" in supported and "n=3 seed(s)" in out
    assert "even the hypothesis does not account for all of it" in out  # 76.37 vs 72.4 ± 0.4: resolved
    assert "Whether" not in out and "The seed-to-seed spread at this scale" not in out
    assert "pooled seed-to-seed sd 0.40" in out


def test_full_scale_hypothesis_not_resolved_from_its_setting():
    out = text(h.full_scale_conclusion(full_scale((78.2, 78.4, 78.6), (33.0, 33.4, 33.8), (75.0, 76.0, 77.0),
                                                  (23.0, 23.1, 23.2), sd=2.0)))
    assert "the report is **consistent with** that setting (p = 0.8" in out and "even the hypothesis" not in out


def test_full_scale_without_the_reference_folder_says_so():
    out = text(h.full_scale_conclusion(full_scale(fix_matched=())))
    assert "holds no run for lr 0.5, tested with Normalize" in out and "`report/reference/full/`" in out


def test_full_scale_table_sets_the_reference_beside_the_report():
    t = h.full_scale_table(full_scale()).set_index("setting (recipe normalize)")
    for row in ("lr 0.5, tested without Normalize", "lr 0.5, tested with Normalize"):
        assert t.loc[row, "report (%)"] == 76.37 and t.loc[row, "report's test transform"] == "not stated"
    assert t.loc["lr 0.1, tested without Normalize", "report (%)"] == 30.0
    assert t.loc["lr 0.1, tested with Normalize", "reference runs, report/reference/full/ (%)"].mean == 78.39
    assert math.isnan(t.loc["lr 0.1, tested with Normalize", "report (%)"])


def test_the_full_scale_reading_of_the_committed_reference_renders_its_figures():
    fs = h.FullScale.load()
    assert min(s.n for s in fs.settings().values()) >= 1
    assert h.normalization_experiments(0.1, 0.5) == ["none", "normalize", "normalize, lr 0.5"]
    runs = h.records(Path(__file__).resolve().parents[1] / "report" / "reference" / "full").set_index("experiment")
    assert (fs.matched.values, fs.mismatched.values) == ((runs.loc["normalize", "final_test_acc"],),
                                                         (runs.loc["normalize", "raw_final_test_acc"],))
    assert (fs.fix_matched.values, fs.fix_mismatched.values) == ((runs.loc["normalize, lr 0.5", "final_test_acc"],),
                                                                 (runs.loc["normalize, lr 0.5", "raw_final_test_acc"],))
    out = text(h.full_scale_conclusion(fs))
    for s in fs.settings().values():
        assert s.format() in out or f"{s.mean:.2f}" in out
    assert "`report/reference/full/`" in out and "(a hypothesis, not a fact)" in out
