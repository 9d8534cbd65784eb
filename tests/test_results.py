"""Tables, notes and verdict rows carry the measured values and set them beside the report's figures."""
import math
from pathlib import Path

import pandas as pd
import pytest

import helpers as h
from helpers.core import stats as stats_mod
from helpers.notebook import results as R
from fakes import fake_run, seeds, text

FULL = h.make_config("full", data_dir="/f")
QUICK = h.make_config("quick", data_dir="/f")


def test_report_figures_are_the_reports():
    assert h.REPORT_TEST_ACC == {"none": 79.44, "flip_rotate": 81.94, "crop": 83.98, "crop_flip": None}
    assert h.REPORT_NORMALIZE["fix_test_acc"] == 76.37 and h.REPORT_NORMALIZE["fix_lr"] == 0.5
    assert R.REPORT_MEAN == (0.4914, 0.4822, 0.4465) and R.REPORT_STD == (0.247, 0.243, 0.261)


def test_only_the_unmodified_full_profile_is_comparable():
    full = h.make_config("full", data_dir="/some/folder")
    assert h.is_comparable(full)
    assert "**Comparable" in text(h.profile_note(full))
    for cfg in (h.make_config("full", epochs=2, data_dir="/f"), h.make_config("full", train_size=10_000, data_dir="/f"),
                h.make_config("quick", data_dir="/f"), h.make_config("smoke")):
        assert not h.is_comparable(cfg)
        assert "**Not comparable" in text(h.profile_note(cfg))
    assert "synthetic" in text(h.profile_note(h.make_config("smoke")))
    assert "`quick`" in h.comparability(h.make_config("quick", data_dir="/f"))


def test_variant_changes_and_revalidates():
    cfg = h.make_config("smoke")
    v = h.variant(cfg, recipe="crop")
    assert v.recipe == "crop" and v.epochs == cfg.epochs and cfg.recipe == "none"
    with pytest.raises(h.ConfigError, match=r"'lr' = -1.0 is invalid"):
        h.variant(cfg, lr=-1.0)
    with pytest.raises(h.ConfigError, match="'mismatch'"):
        h.variant(cfg, mismatch=True)  # only with a normalizing recipe
    with pytest.raises(h.ConfigError, match="unknown parameter"):
        h.variant(cfg, colour="red")


def test_stage_table_and_note_read_the_measured_shapes():
    shapes = {s: h.stage_shapes(h.build_model(s)) for s in ("imagenet", "cifar")}
    t = h.stage_table(shapes)
    assert t.set_index("stage").loc["layer4"].tolist() == ["512×1×1", "512×4×4"]
    out = text(h.stage_note(shapes))
    assert "imagenet stem**: layer4 is 512×1×1, a single spatial position" in out
    assert "cifar stem**: layer4 is 512×4×4" in out and "16 positions" in out
    fake = {"wide": [("layer4", (512, 2, 3))]}
    assert "6 positions" in text(h.stage_note(fake))


def test_per_class_note_names_best_worst_and_worst_confusion():
    m = fake_run(60).metrics
    m["confusion"][3][5] = 7  # cats taken for dogs
    m["confusion"][1][9] = 2
    out = text(h.per_class_note(m))
    assert "**truck** (59.00%)" in out and "**airplane** (50.00%)" in out
    assert "true **cat** predicted as **dog** (7 of 17" in out


def test_checkpoints_table_maps_the_report_epochs_and_checks_the_files(tmp_path):
    cfg = h.make_config("smoke")
    (tmp_path / "epoch002.pt").write_bytes(b"x")
    (tmp_path / "epoch004.pt").write_bytes(b"x")
    t = h.checkpoints_table(fake_run(60, epochs=4, path=tmp_path), cfg)
    assert t["report's epoch"].tolist() == [30, 50, 60]
    assert t["this profile's epoch"].tolist() == [2, 3, 4]
    assert t["weights stored"].tolist() == [True, False, True]


def test_recipe_forms_print_torchvisions_own_pipelines():
    out = text(h.recipe_forms(["crop", "flip_rotate"]))
    assert "RandomCrop(size=(32, 32), padding=4)" in out
    assert "RandomHorizontalFlip(p=0.5)" in out and "RandomRotation(degrees=[-30.0, 30.0]" in out




# ---- spread across seeds: tables and the reference spread ----------------------------------------

def test_style_table_formats_spreads_with_n_and_missing_values():
    df = pd.DataFrame({"a": [h.spread([80.0, 82.0]), h.spread([81.5])], "b": [1.23456, math.nan],
                       "c": pd.Series([3, None], dtype=object)})
    html = h.style_table(df).to_html()
    assert "81.00 ± 1.41 (n=2)" in html and "81.50 (n=1)" in html
    assert "1.23" in html and "1.2346" not in html and html.count("—") == 2 and ">3<" in html


def test_runs_are_grouped_by_experiment_and_tabled_per_seed():
    runs = seeds([70.0, 72.0]) + seeds([75.0], recipe="crop")
    grouped = h.group_runs(runs)
    assert list(grouped) == ["none", "crop"] and [r.config["seed"] for r in grouped["none"]] == [0, 1]
    t = h.runs_table(grouped)
    assert t["run"].tolist() == ["none", "none", "crop"] and t["seed"].tolist() == [0, 1, 0]
    assert h.final_spread(grouped["none"]).values == (70.0, 72.0)
    per_seed = h.seed_columns(pd.DataFrame({"recipe": ["none", "crop"]}), grouped, "recipe")
    assert per_seed["seed 0 (%)"].tolist() == [70.0, 75.0]
    assert per_seed["seed 1 (%)"].iloc[0] == 72.0 and math.isnan(per_seed["seed 1 (%)"].iloc[1])


@pytest.fixture
def reference_module(monkeypatch):
    """Reference runs as {(profile, experiment, raw): final accuracies}, in place of report/reference/'s records."""
    store = {}

    def records(folder):
        rows = [{"experiment": e, "raw_final_test_acc" if raw else "final_test_acc": v}
                for (profile, e, raw), values in store.items() if profile == Path(folder).name for v in values]
        return pd.DataFrame(rows, columns=["experiment", "final_test_acc", "raw_final_test_acc"])

    monkeypatch.setattr(R, "records", records)
    return store


def test_reference_sd_pools_the_profiles_experiments_and_skips_missing_ones(reference_module):
    reference_module.update({("full", "none", False): [78.0, 79.0, 80.0], ("full", "crop", False): [81.0, 83.0, 82.0],
                             ("full", "fast", False): [82.0]})
    ref = h.reference_sd("full", ["none", "crop", "fast", "flip_rotate"])
    assert ref.sd == pytest.approx(1.0) and ref.experiments == 2 and ref.folder == "report/reference/full/"
    assert not h.reference_sd("quick", ["none"]).measured  # no such profile: not measured
    assert R.stored_spread("full", "none").n == 3 and R.stored_spread("full", "crop, lr 0.5").n == 0


def test_a_normalizing_experiment_gives_a_spread_with_and_one_without_normalize(reference_module):
    reference_module.update({("quick", "normalize", False): [48.0, 50.0], ("quick", "normalize", True): [10.0, 14.0]})
    assert R.stored_spread("quick", "normalize").values == (48.0, 50.0)
    assert R.stored_spread("quick", "normalize", raw=True).values == (10.0, 14.0)
    ref = h.reference_sd("quick", ["normalize"])
    assert ref.experiments == 2 and ref.dof == 2 and ref.sd == pytest.approx(math.sqrt((2.0 + 8.0) / 2))


def test_the_committed_reference_is_read_with_its_folder():
    ref = h.reference_sd("full", ["none", "crop"])
    assert ref.folder == "report/reference/full/"
    spreads = [R.stored_spread("full", r) for r in ("none", "crop")]
    assert all(s.n >= 1 for s in spreads)
    own = any(s.n >= 2 for s in spreads)  # measured in its own folder only once a second seed is there
    assert (ref.measured and not ref.borrowed) == own
    assert ref.borrowed == (not own and h.reference_sd("quick", ["none", "crop"]).measured)
    quick = h.records(Path(__file__).resolve().parents[1] / "report" / "reference" / "quick")
    lr5 = quick[quick["experiment"] == "normalize, lr 0.5"]
    assert R.stored_spread("quick", "normalize, lr 0.5", raw=True).values == tuple(lr5["raw_final_test_acc"])


def test_reference_sd_of_full_borrows_the_quick_spread_only_when_its_own_is_unmeasured(reference_module):
    reference_module.update({("full", "none", False): [78.0], ("full", "crop", False): [81.0],
                             ("quick", "none", False): [47.0, 49.0], ("quick", "crop", False): [52.0, 54.0]})
    ref = h.reference_sd("full", ["none", "crop"])
    assert ref.borrowed and ref.measured_in == "quick" and ref.sd == pytest.approx(math.sqrt(2.0))
    assert ref.folder == "report/reference/full/" and ref.sd_folder == "report/reference/quick/"
    own = h.reference_sd("quick", ["none"])
    assert not own.borrowed and own.sd_folder == "report/reference/quick/"
    reference_module[("full", "none", False)] = [78.0, 78.5]  # a second full seed: its own spread wins
    ref = h.reference_sd("full", ["none", "crop"])
    assert not ref.borrowed and ref.sd == pytest.approx(math.sqrt(0.125))
    reference_module.clear()
    reference_module[("full", "none", False)] = [78.0]  # no quick folder: nothing to borrow
    assert not h.reference_sd("full", ["none"]).measured


def test_verdict_note_states_welch_and_names_the_reference_folder_when_it_is_used():
    welch = h.Verdict("c", "a", "b", h.judge([80.0, 81.0], [70.0, 71.0]))
    assert text(h.verdict_note([welch])) == f"*Rule*: {stats_mod.RULE}."
    ref = R.Reference("quick", 0.5, 3)
    single = h.Verdict("c", "a", "b", h.judge([80.0], [70.0], ref))
    note = text(h.verdict_note([welch, single], ref))
    assert stats_mod.RULE_REFERENCE in note and "`report/reference/quick/`, pooled over 3 experiment(s)" in note
    assert "stand in" not in note and "no experiment here" not in note
    borrowed = R.Reference("full", 0.5, 3, measured_in="quick")
    note = text(h.verdict_note([h.Verdict("c", "a", "b", h.judge([80.0], [70.0], borrowed))], borrowed))
    assert "`report/reference/quick/`, pooled" in note and "`report/reference/full/` has none with two seeds" in note
    assert "quick profile's smaller runs stand in" in note
    smoke = R.Reference("smoke", math.nan)
    none = text(h.verdict_note([h.Verdict("c", "a", "b", h.judge([80.0], [70.0], smoke))], smoke, QUICK))
    assert "`report/reference/smoke/` has no experiment here with two seeds" in none and "**not judged**" in none
    assert none.endswith(h.comparability(QUICK)) and "`quick` trains on less data" in none


# ---- notebook 01 ------------------------------------------------------------------------------------

def test_accuracy_table_shows_the_spread_and_each_seed_when_asked():
    runs = seeds([70.0, 72.0], train=99.0)
    t = h.accuracy_table(runs)
    assert len(t) == 1 and t.loc[0, "final test acc (%)"].format() == "71.00 ± 1.41% (n=2)"
    assert t.loc[0, "report test acc (%)"] == 79.44
    t = h.accuracy_table(runs, per_seed=True)
    assert t["runs"].tolist() == ["all seeds", "seed 0", "seed 1"] and t["report test acc (%)"].isna().tolist()[1:] == [True] * 2
    assert t.loc[2, "final test acc (%)"].values == (72.0,) and t.loc[1, "final train acc (%)"].mean == 99.0


def rows(verdicts):
    """The verdicts' rendered rows, keyed by claim."""
    return {v.claim: v.row() for v in verdicts}


REPORT = "the baseline's test accuracy matches the report's"


def test_baseline_verdicts_judge_the_best_epoch_and_overfitting_and_leave_the_report_out_at_another_scale():
    out = rows(h.baseline_verdicts(seeds([70.0, 71.0], best=72.25, train=99.0, epochs=12), QUICK))
    assert list(out) == ["the last epoch is as good as the best one",
                         "training accuracy exceeds test accuracy (overfitting)"]  # quick is not the report's scale
    best = out["the last epoch is as good as the best one"]
    assert (best["A"], best["B"]) == ("last epoch 70.50 ± 0.71% (n=2)", "best epoch 72.25 ± 0.00% (n=2)")
    assert best["difference"] == "-1.75 points" and best["verdict"].startswith("consistent (p = 0.1")
    overfit = out["training accuracy exceeds test accuracy (overfitting)"]
    assert overfit["difference"] == "+28.50 points" and overfit["verdict"].startswith("differs (p = 0.01")
    assert overfit["verdict"].endswith(", higher") and overfit["rule"] == "Welch t, df 1.0"


def test_baseline_verdict_in_the_full_profile_is_consistent_with_the_report_within_the_reference_spread():
    ref = R.Reference("full", 0.5, 1)  # se 0.5 * sqrt(1/3 + 1) = 0.577, one degree of freedom
    report = rows(h.baseline_verdicts(seeds([79.0, 80.0, 79.5], epochs=60), FULL, ref))[REPORT]
    assert (report["A"], report["B"]) == ("measured 79.50 ± 0.50% (n=3)", "the report 79.44% (n=1)")
    assert report["verdict"] == "consistent (p = 0.934)" and report["rule"] == "reference sd 0.50, df 1"
    assert report["difference"] == "+0.06 points" and report["spread"] == "se 0.58"
    unjudged = rows(h.baseline_verdicts(seeds([79.0, 80.0, 79.5], epochs=60), FULL))[REPORT]
    assert unjudged["verdict"] == "not judged"  # one value on the report's side and no reference spread


@pytest.mark.parametrize("final", [[70.0, 70.5, 71.0], [88.0, 88.5, 87.5]])
def test_baseline_verdict_names_a_difference_from_the_report_with_its_direction(final):
    report = rows(h.baseline_verdicts(seeds(final, epochs=60), FULL, R.Reference("full", 0.5, 1)))[REPORT]
    assert report["verdict"].startswith("differs (p = 0.0")
    assert report["verdict"].endswith(", lower" if final[0] < 79.44 else ", higher")


# ---- notebook 02 ------------------------------------------------------------------------------------

def recipe_runs(crop=(75.0, 75.4), flip=(72.0, 72.4), crop_flip=(76.0, 76.4)):
    """Two seeds per recipe; `none` at 70.0/70.4."""
    return {"none": seeds([70.0, 70.4], best=71.0, train=99.0),
            "flip_rotate": seeds(flip, train=85.0, recipe="flip_rotate"),
            "crop": seeds(crop, train=88.0, recipe="crop"),
            "crop_flip": seeds(crop_flip, train=84.0, recipe="crop_flip")}


def test_recipe_table_holds_spreads_the_gap_and_each_seed():
    t = h.recipe_table(recipe_runs()).set_index("recipe")
    assert t.loc["crop", "report test acc (%)"] == 83.98 and math.isnan(t.loc["crop_flip", "report test acc (%)"])
    assert t.loc["none", "final test acc (%)"].values == (70.0, 70.4)
    assert t.loc["none", "best test acc (%)"].mean == 71.0
    assert t.loc["none", "train−test gap (points)"].mean == pytest.approx(28.8)
    assert t.loc["crop_flip", "train−test gap (points)"].values == pytest.approx((8.0, 7.6))
    per_seed = h.recipe_table(recipe_runs(), per_seed=True).set_index("recipe")
    assert per_seed.loc["crop", "seed 1 final test (%)"] == 75.4
    assert h.recipe_table({"none": fake_run(70.0)}).loc[0, "final test acc (%)"].n == 1  # a single run is one seed


def test_recipe_verdicts_judge_each_recipe_against_none_and_the_reports_ranking_with_welch():
    out = rows(h.recipe_verdicts(h.recipe_table(recipe_runs())))
    assert list(out) == ["flip_rotate beats none (report: +2.50 points)", "crop beats none (report: +4.54 points)",
                         "crop_flip beats none", "crop beats flip_rotate (report: +2.04 points)",
                         "flip_rotate narrows the train–test gap", "crop narrows the train–test gap",
                         "crop_flip narrows the train–test gap"]
    crop = out["crop beats none (report: +4.54 points)"]
    assert (crop["A"], crop["B"], crop["difference"]) == ("crop 75.20 ± 0.28% (n=2)", "none 70.20 ± 0.28% (n=2)",
                                                          "+5.00 points")
    assert crop["verdict"] == "differs (p = 0.003), higher" and crop["rule"] == "Welch t, df 2.0"
    assert out["crop beats flip_rotate (report: +2.04 points)"]["verdict"].endswith(", higher")
    gap = out["crop narrows the train–test gap"]
    assert gap["A"] == "crop 12.80 ± 0.28% (n=2)" and gap["verdict"].endswith(", lower")


def test_recipe_verdicts_show_a_difference_against_the_reports_direction():
    out = rows(h.recipe_verdicts(h.recipe_table(recipe_runs(crop=(65.0, 65.4), crop_flip=(60.0, 60.4)))))
    assert out["crop beats none (report: +4.54 points)"]["verdict"] == "differs (p = 0.003), lower"
    assert out["crop beats flip_rotate (report: +2.04 points)"]["verdict"].endswith(", lower")
    assert out["crop_flip beats none"]["verdict"].endswith(", lower")


def test_recipe_verdicts_with_one_seed_are_not_judged_without_a_reference_spread():
    runs = {k: rs[:1] for k, rs in recipe_runs().items()}
    assert {r["verdict"] for r in rows(h.recipe_verdicts(h.recipe_table(runs))).values()} == {"not judged"}


def test_recipe_verdicts_with_one_seed_use_the_reference_spread():
    runs = {k: rs[:1] for k, rs in recipe_runs().items()}
    ref = R.Reference("quick", 0.5, 4)  # se 0.5 * sqrt(2) = 0.71, 4 degrees of freedom
    crop = rows(h.recipe_verdicts(h.recipe_table(runs), ref))["crop beats none (report: +4.54 points)"]
    assert crop["verdict"] == "differs (p = 0.002), higher" and crop["rule"] == "reference sd 0.50, df 4"
    one_each = {"none": [fake_run(70.0)], "crop": [fake_run(71.0)]}
    close = rows(h.recipe_verdicts(h.recipe_table(one_each), ref))["crop beats none (report: +4.54 points)"]
    assert close["verdict"] == "consistent (p = 0.230)"


def test_recipe_verdicts_need_a_none_run():
    with pytest.raises(ValueError, match=r"parameter 'table' has recipes \['crop'\]; valid: a table with a 'none' row"):
        h.recipe_verdicts(h.recipe_table({"crop": seeds([70.0])}))
