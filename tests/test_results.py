"""Tables and rendered text carry the measured values, set them beside the report's, and flag contradictions."""
import math
from pathlib import Path

import pandas as pd
import pytest
import torch

import helpers as h
from helpers import results as R
from helpers.runs import Run


def fake_run(final, best=None, train=None, recipe="none", epochs=4, lr=0.1, mismatch=False, path=Path("/x"),
             train_loss=0.5):
    """A Run as the store returns it, with a made-up history ending at the given accuracies."""
    best = final if best is None else best
    train = final + 10 if train is None else train
    hist = pd.DataFrame({"epoch": range(1, epochs + 1), "lr": [lr] * epochs,
                         "train_loss": [1.0] * (epochs - 1) + [train_loss], "train_acc": [50.0] * (epochs - 1) + [train],
                         "test_loss": [1.0] * epochs, "test_acc": [best] + [40.0] * (epochs - 2) + [final],
                         "seconds": [30.0] * epochs})
    metrics = {"final_test_acc": final, "best_test_acc": max(best, final),
               "best_epoch": 1 if best > final else epochs,
               "per_class_acc": {c: 50.0 + i for i, c in enumerate(h.CLASSES)},
               "confusion": [[10 if i == j else 0 for j in range(10)] for i in range(10)]}
    config = {"recipe": recipe, "lr": lr, "mismatch": mismatch, "epochs": epochs, "stem": "imagenet"}
    return Run("abc123", path, config, hist, metrics, {"device": "cpu", "threads": 2, "finished": "now"})


def text(markdown):
    return markdown.data


def test_pct_formats_and_marks_missing_values():
    assert R.pct(79.444) == "79.44%" and R.pct(None) == "n/a" and R.pct(math.nan) == "n/a"


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


def test_accuracy_note_renders_the_measured_values_beside_the_reports():
    run = fake_run(70.5, best=72.25, train=99.0, epochs=12)
    out = text(h.accuracy_note(run, 79.44, h.make_config("quick", data_dir="/f")))
    assert "**70.50%**" in out and "**72.25%**" in out and "**79.44%**" in out
    assert "best epoch (1)" in out and "-8.94 points" in out and "says nothing about the report" in out
    assert "not the peak" in out and "overfitting" in out and "28.5 points" in out


def test_accuracy_note_agrees_or_contradicts_in_the_full_profile():
    full = h.make_config("full", data_dir="/f")
    assert "**agrees**" in text(h.accuracy_note(fake_run(80.1, epochs=60), 79.44, full))
    out = text(h.accuracy_note(fake_run(70.0, epochs=60), 79.44, full))
    assert "**contradicts**" in out and "-9.44" in out


def test_stage_table_and_note_read_the_measured_shapes():
    shapes = {s: h.stage_shapes(h.build_model(s)) for s in ("imagenet", "cifar")}
    t = h.stage_table(shapes)
    assert t.set_index("stage").loc["layer4"].tolist() == ["512×1×1", "512×4×4"]
    out = text(h.stage_note(shapes))
    assert "imagenet stem**: layer4 is 512×1×1: a single spatial position" in out
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


def recipe_runs(crop=75.0):
    return {"none": fake_run(70.0, best=71.0, train=99.0), "flip_rotate": fake_run(72.0, train=85.0, recipe="flip_rotate"),
            "crop": fake_run(crop, train=88.0, recipe="crop"), "crop_flip": fake_run(76.0, train=84.0, recipe="crop_flip")}


def test_recipe_table_holds_measured_values_and_the_gap():
    t = h.recipe_table(recipe_runs()).set_index("recipe")
    assert t.loc["crop", "report test acc (%)"] == 83.98 and math.isnan(t.loc["crop_flip", "report test acc (%)"])
    assert t.loc["none", "final test acc (%)"] == 70.0 and t.loc["none", "best test acc (%)"] == 71.0
    assert t.loc["none", "train−test gap (points)"] == pytest.approx(29.0)
    assert t.loc["crop_flip", "train−test gap (points)"] == pytest.approx(8.0)


def test_recipe_findings_agree_when_augmentation_helps():
    cfg = h.make_config("quick", data_dir="/f")
    out = text(h.recipe_findings(h.recipe_table(recipe_runs()), cfg))
    assert "**crop**: 75.00% final (+5.00 points vs `none`)" in out
    assert out.count("**same direction** as the report") == 2
    assert "did not try this recipe; it helps here" in out
    assert "No contradiction" in out and "Not comparable" in out
    assert "largest for **none** (29.0 points)" in out and "shrinks the gap" in out
    assert "no pair is in the opposite order" in out and "differs" not in out


def test_recipe_findings_flag_a_contradiction_with_the_report():
    out = text(h.recipe_findings(h.recipe_table(recipe_runs(crop=69.0)), h.make_config("smoke")))
    assert "**contradicts the report**: here the recipe does not help" in out
    assert "1 contradiction(s)" in out
    assert "**differs** from the report's ranking (crop > flip_rotate > none)" in out


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
    base = dict(baseline_acc=70.0, matched_acc=71.0, mismatched_acc=15.0, mismatch_curve_acc=15.0, train_loss=0.01,
                fix_lr=0.5, fix_mismatched_acc=20.0, fix_matched_acc=66.0, fix_train_loss=0.2)
    return h.NormalizationStudy(**{**base, **changes})


CFG = h.make_config("quick", data_dir="/f", recipe="normalize")


def test_normalization_table_carries_the_measurements():
    t = h.normalization_table(study(), 0.1).set_index("setting")
    assert t["measured test acc (%)"].tolist() == [70.0, 71.0, 15.0, 20.0, 66.0]
    assert t.loc["normalize, test without Normalize", "report test acc (%)"] == 30.0
    assert t.loc["normalize, lr 0.5, test without Normalize", "report test acc (%)"] == 76.37
    assert t.loc["normalize, lr 0.5, correct pipeline", "final train loss"] == 0.2


def test_conclusion_supports_the_mismatch_when_only_the_mismatched_evaluation_collapses():
    out = text(h.normalization_conclusion(study(), CFG))
    assert "**The mismatch hypothesis is supported.**" in out
    assert "71.00%" in out and "15.00%" in out and "**Overfitting does not explain it.**" in out
    assert "exactly the figure of the separate evaluation" in out
    assert "does **not** repair" in out and "**contradicting the report's** 76.37%" in out
    assert "no improvement" in out and "Not comparable" in out


def test_conclusion_says_so_when_the_measurements_do_not_support_the_mismatch():
    out = text(h.normalization_conclusion(study(mismatched_acc=65.0, mismatch_curve_acc=64.0), CFG))
    assert "**The measurements do not support the mismatch hypothesis.**" in out
    assert "supported.**" not in out and "Overfitting does not explain" not in out
    assert "the two disagree" in out


def test_conclusion_partial_when_the_correct_pipeline_is_also_poor():
    out = text(h.normalization_conclusion(study(matched_acc=50.0), CFG))
    assert "**Partly supported.**" in out and "71.00%" not in out


def test_conclusion_reports_a_working_or_partial_fix():
    fixed = text(h.normalization_conclusion(study(fix_mismatched_acc=69.0), CFG))
    assert "does make the mismatched evaluation about as good" in fixed
    partial = text(h.normalization_conclusion(study(fix_mismatched_acc=40.0), CFG))
    assert "partial, accidental repair" in partial
    better = text(h.normalization_conclusion(study(fix_matched_acc=80.0), CFG))
    assert "better in itself" in better


def test_study_from_runs_reads_runs_and_evaluations():
    correct = fake_run(71.0, train_loss=0.02, recipe="normalize")
    correct.history["other_test_loss"], correct.history["other_test_acc"] = 3.0, [20.0, 18.0, 16.0, 14.0]
    s = h.NormalizationStudy.from_runs(fake_run(70.0), correct, fake_run(30.0, lr=0.5, train_loss=0.3),
                                       {"acc": 71.0}, {"acc": 14.5}, {"acc": 60.0})
    assert (s.baseline_acc, s.matched_acc, s.mismatched_acc, s.mismatch_curve_acc) == (70.0, 71.0, 14.5, 14.0)
    assert (s.train_loss, s.fix_lr, s.fix_mismatched_acc, s.fix_matched_acc, s.fix_train_loss) == (0.02, 0.5, 30.0, 60.0, 0.3)


def test_runs_table_and_run_note():
    runs = {"none": fake_run(70.0), "crop": fake_run(75.0, recipe="crop")}
    t = h.runs_table(runs)
    assert t["run"].tolist() == ["none", "crop"] and t["training minutes"].tolist() == [2.0, 2.0]
    out = text(h.run_note(fake_run(70.0, recipe="normalize", mismatch=True)))
    assert "recipe `normalize`, test without normalization" in out and "2.0 min" in out


def test_recipe_findings_do_not_call_a_tie_a_different_ranking():
    runs = recipe_runs(crop=72.0)  # crop ties with flip_rotate; the report has crop above it
    out = text(h.recipe_findings(h.recipe_table(runs), h.make_config("smoke")))
    assert "no pair is in the opposite order" in out and "**differs**" not in out
