"""Notebook 03's measurements, tables and verdicts: the normalization failure across seeds, and at full scale.
Each normalizing run is scored with and without Normalize at test time (history's test_* and raw_test_* columns)."""
from __future__ import annotations

import dataclasses

import pandas as pd
from IPython.display import Markdown

from helpers.core.config import Config, experiment_name, make_config
from helpers.core.recipes import eval_batch, get_recipe
from .results import (NO_REFERENCE, REPORT_MEAN, REPORT_NORMALIZE, REPORT_READING, REPORT_STD, REPORT_TEST_ACC,
                      Reference, _as_list, final_spread, is_comparable, judged, reference_sd, report_side,
                      stored_spread)
from helpers.core.stats import Spread, Verdict, spread


def channel_stats_table(mean, std) -> pd.DataFrame:
    """Return measured per-channel mean/std beside the report's constants, with the differences."""
    df = pd.DataFrame({"channel": list("RGB"), "measured mean": mean, "report mean": REPORT_MEAN, "measured std": std,
                       "report std": REPORT_STD})
    return df.assign(**{"mean diff": df["measured mean"] - df["report mean"],
                        "std diff": df["measured std"] - df["report std"]})


def channel_stats_note(table: pd.DataFrame, n_images: int, source: str, tolerance: float = 0.01) -> Markdown:
    """Return whether the report's constants fit the measured statistics, within `tolerance`."""
    worst = max(table["mean diff"].abs().max(), table["std diff"].abs().max())
    fits = (f"within {tolerance}: **the constants are right**, so the numbers cannot explain a collapse."
            if worst <= tolerance else f"more than {tolerance}: the constants **do not fit** these images.")
    return Markdown(f"Measured on {n_images:,} training images ({source} data): the largest difference from the "
                    f"report's constants is {worst:.4f} (pixel scale 0–1), {fits}")


def input_ranges(x) -> pd.DataFrame:
    """Return mean, std, min and max of uint8 images as the network receives them, without and with Normalize."""
    rec = get_recipe("normalize")
    batches = {"ToTensor only (values 0–1)": eval_batch(rec, x, normalize=False),
               "ToTensor + Normalize": eval_batch(rec, x, normalize=True)}
    return pd.DataFrame([{"test-time transform": label, "mean": v.mean().item(), "std": v.std().item(),
                          "min": v.min().item(), "max": v.max().item()} for label, v in batches.items()])


def evaluation_table(results: dict) -> pd.DataFrame:
    """Return one row per labelled `evaluate` result: its test loss and accuracy."""
    return pd.DataFrame([{"evaluation": label, "test loss": r["loss"], "test acc (%)": r["acc"]}
                         for label, r in results.items()])


def raw_history(run) -> pd.DataFrame:
    """Return the run's history with test_loss/test_acc from its test images without Normalize (raw_test_*)."""
    h = run.history
    if "raw_test_acc" not in h:
        raise ValueError(f"run {run.id} (recipe {run.config['recipe']!r}) has no evaluation without Normalize: "
                         "only normalizing recipes record one")
    return h.assign(test_loss=h["raw_test_loss"], test_acc=h["raw_test_acc"])


def scored(run, normalize: bool) -> float:
    """Return a normalizing run's final test accuracy with (normalize=True) or without Normalize at test time."""
    return run.final_acc if normalize else float(raw_history(run)["test_acc"].iloc[-1])


@dataclasses.dataclass
class NormalizationStudy:
    """Notebook 03's four normalizing settings, accuracy (%) per seed, with the baseline and losses where measured."""
    matched: Spread                   # trained with Normalize at lr, tested with it (the correct pipeline)
    mismatched: Spread                # the same weights tested without it (the report's setup)
    fix_matched: Spread               # the same at fix_lr, the report's "fix"
    fix_mismatched: Spread
    ref: Reference = NO_REFERENCE     # the reference spread that judges one seed (set by `load`)
    lr: float = 0.1
    fix_lr: float = 0.5
    baseline: Spread = Spread(())     # recipe none; empty for the full-scale reference runs
    train_loss: Spread = Spread(())   # final training loss at lr, and at fix_lr
    fix_train_loss: Spread = Spread(())

    @classmethod
    def from_runs(cls, baseline, correct, fixed) -> "NormalizationStudy":
        """Return the study from the three experiments' runs (a run or a list of seeds' runs each)."""
        correct, fixed = _as_list(correct), _as_list(fixed)
        return cls(*(spread(scored(r, n) for r in rs) for rs in (correct, fixed) for n in (True, False)),
                   lr=float(correct[0].config["lr"]), fix_lr=float(fixed[0].config["lr"]),
                   baseline=final_spread(baseline), train_loss=final_spread(correct, "train_loss"),
                   fix_train_loss=final_spread(fixed, "train_loss"))

    @classmethod
    def load(cls, lr: float = 0.1, fix_lr: float = 0.5, profile: str = "full") -> "NormalizationStudy":
        """Return the settings stored in the profile's reference folder (empty Spreads where missing)."""
        names = experiments(lr, fix_lr, profile)
        return cls(*(stored_spread(profile, name, raw) for name in names[1:] for raw in (False, True)),
                   reference_sd(profile, names), lr, fix_lr)

    def settings(self) -> dict:
        """Return {label: Spread} of the four settings."""
        labels = (f"lr {x}, tested {t} Normalize" for x in (self.lr, self.fix_lr) for t in ("with", "without"))
        return dict(zip(labels, (self.matched, self.mismatched, self.fix_matched, self.fix_mismatched)))


FullScale = NormalizationStudy  # the study at the report's scale: FullScale.load() reads the full-scale reference


def normalization_table(s: NormalizationStudy, lr: float) -> pd.DataFrame:
    """Return one row per (training, test-time transform) setting, mean ± sd (n), with the report's figure."""
    fix = (REPORT_NORMALIZE["fix_test_acc"], REPORT_READING["fix"])
    rows = [("none (baseline)", lr, "ToTensor", "ToTensor", None, s.baseline, REPORT_TEST_ACC["none"], ""),
            ("normalize, correct pipeline", lr, "Normalize", "Normalize", s.train_loss, s.matched, float("nan"), ""),
            ("normalize, test without Normalize", lr, "Normalize", "ToTensor", s.train_loss, s.mismatched,
             REPORT_NORMALIZE["test_acc"], REPORT_READING["collapse"]),
            (f"normalize, lr {s.fix_lr}, test without Normalize", s.fix_lr, "Normalize", "ToTensor", s.fix_train_loss,
             s.fix_mismatched, *fix),
            (f"normalize, lr {s.fix_lr}, correct pipeline", s.fix_lr, "Normalize", "Normalize", s.fix_train_loss,
             s.fix_matched, *fix)]
    return pd.DataFrame(rows, columns=["setting", "lr", "train transform", "test transform", "final train loss",
                                       "measured test acc (%)", "report test acc (%)", "report's test transform"])


def experiments(lr: float, fix_lr: float, profile: str = "full") -> list[str]:
    """Return the names of the study's experiments in a profile, whose reference spread judges single seeds."""
    return [experiment_name(make_config(profile, recipe=r, lr=x, data_dir="synthetic"))
            for r, x in (("none", lr), ("normalize", lr), ("normalize", fix_lr))]


def normalization_verdicts(s: NormalizationStudy, cfg: Config | None, ref: Reference = NO_REFERENCE) -> list[Verdict]:
    """Return notebook 03's verdicts, the report's figures a side where `cfg` (None: the report's scale) compares."""
    comparable, (m, w, fm, fw) = cfg is None or is_comparable(cfg), s.settings()
    report, report_fix = f"the report, lr {s.lr}", f"the report, lr {s.fix_lr}"
    sides = {"none": s.baseline, **s.settings(), report: report_side(REPORT_NORMALIZE["test_acc"], comparable),
             report_fix: report_side(REPORT_NORMALIZE["fix_test_acc"], comparable)}
    claims = [("dropping Normalize at test time lowers accuracy (the mismatch)", w, m),
              ("normalizing, done right, is as good as no normalization", m, "none"),
              ("the mismatch gives the report's collapse", w, report),
              (f"lr {s.fix_lr} improves the mismatched evaluation", fw, w),
              (f"lr {s.fix_lr} repairs the mismatch: as good as the correct pipeline", fw, m),
              (f"lr {s.fix_lr} is better in itself (correct pipeline)", fm, m),
              (f"lr {s.fix_lr}, still mismatched, gives the report's fixed figure", fw, report_fix),
              (f"hypothesis: the report tested its lr {s.fix_lr} run with Normalize", fm, report_fix)]
    return judged([(c, a, sides[a], b, sides[b]) for c, a, b in claims], ref)


def full_scale_verdicts(fs: NormalizationStudy) -> list[Verdict]:
    """Return the study's verdicts at the report's scale, judged with the full-scale reference spread."""
    return normalization_verdicts(fs, None, fs.ref)


def full_scale_table(fs: NormalizationStudy) -> pd.DataFrame:
    """Return the full-scale reference's four settings (mean ± sd, n) beside the report's figures."""
    fix = (REPORT_NORMALIZE["fix_test_acc"], REPORT_READING["fix"])
    report = {f"lr {fs.lr}, tested without Normalize": (REPORT_NORMALIZE["test_acc"], REPORT_READING["collapse"]),
              f"lr {fs.fix_lr}, tested without Normalize": fix, f"lr {fs.fix_lr}, tested with Normalize": fix}
    return pd.DataFrame([(setting, measured, *report.get(setting, (float("nan"), "")))
                         for setting, measured in fs.settings().items()],
                        columns=["setting (recipe normalize)", f"reference runs, {fs.ref.folder} (%)", "report (%)",
                                 "report's test transform"])
