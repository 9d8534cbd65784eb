"""Notebook 03's measurements, tables and conclusions: the normalization failure across seeds, and at full scale.

Each normalizing run is scored with and without Normalize at test time (history's test_* and raw_test_* columns),
so every setting of the study is read from the run store, one value per seed.
"""
from __future__ import annotations

import dataclasses

import pandas as pd
from IPython.display import Markdown

from .config import Config, experiment_name, make_config
from .recipes import eval_batch, get_recipe
from .results import (NO_REFERENCE, REPORT_MEAN, REPORT_NORMALIZE, REPORT_READING, REPORT_STD, REPORT_TEST_ACC,
                      Reference, _as_list, column_spread, comparability, final_spread, is_comparable, judge, md, pct,
                      rule_note, verdict)
from .stats import Spread, spread

# Effect sizes the conclusions use, in accuracy points; a verdict needs the effect to be resolved too.
COLLAPSE_POINTS = 15.0  # an evaluation this far below the matched one has "collapsed"
RECOVER_POINTS = 5.0    # within this of a reference: "recovers" / "as good as"


def channel_stats_table(mean, std) -> pd.DataFrame:
    """Return measured per-channel mean/std beside the report's constants, with the differences."""
    rows = []
    for k, ch in enumerate("RGB"):
        rows.append({"channel": ch, "measured mean": mean[k], "report mean": REPORT_MEAN[k],
                     "mean diff": mean[k] - REPORT_MEAN[k], "measured std": std[k],
                     "report std": REPORT_STD[k], "std diff": std[k] - REPORT_STD[k]})
    return pd.DataFrame(rows)


def channel_stats_note(table: pd.DataFrame, n_images: int, source: str, tolerance: float = 0.01) -> Markdown:
    """Return whether the report's constants fit the measured statistics, within `tolerance`."""
    worst = max(table["mean diff"].abs().max(), table["std diff"].abs().max())
    text = (f"Measured on {n_images:,} training images ({source} data): the largest difference from the "
            f"report's constants is {worst:.4f} (pixel scale 0–1). ")
    if worst <= tolerance:
        text += (f"That is within {tolerance}: **the constants are right**, so the normalization itself "
                 "(the numbers) cannot explain a collapse.")
    else:
        text += (f"That is more than {tolerance}: the constants **do not fit** these images"
                 + (" — expected for the synthetic stand-in set, whose colours are not CIFAR-10's."
                    if source == "synthetic" else "; that alone would be a finding against the report."))
    return md(text)


def input_ranges(x) -> pd.DataFrame:
    """Return mean, std, min and max of uint8 images as the network receives them, without and with Normalize."""
    rec = get_recipe("normalize")
    rows = []
    for label, normalize in (("ToTensor only (values 0–1)", False), ("ToTensor + Normalize", True)):
        v = eval_batch(rec, x, normalize=normalize)
        rows.append({"test-time transform": label, "mean": v.mean().item(), "std": v.std().item(),
                     "min": v.min().item(), "max": v.max().item()})
    return pd.DataFrame(rows)


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


def scored_spread(runs, normalize: bool) -> Spread:
    """Return the Spread over seeds of `scored`."""
    return spread(scored(r, normalize) for r in _as_list(runs))


@dataclasses.dataclass
class NormalizationStudy:
    """The measurements of notebook 03: accuracies (percent) and losses, one value per seed."""
    baseline: Spread             # recipe none: final test accuracy
    matched: Spread              # normalize-trained, tested WITH normalization (correct pipeline)
    mismatched: Spread           # same weights, tested WITHOUT normalization (the report's setup)
    train_loss: Spread           # normalize-trained, final training loss
    fix_lr: float                # the report's "fix"
    fix_mismatched: Spread       # lr fix_lr, tested without normalization (the report's fixed setup)
    fix_matched: Spread          # same weights, tested with normalization
    fix_train_loss: Spread
    mismatch_eval_acc: float | None = None   # first seed: a separate `evaluate` without normalization
    mismatch_curve_acc: float | None = None  # first seed: the training loop's last score without normalization

    @classmethod
    def from_runs(cls, baseline, correct, fixed, mismatched_eval: dict | None = None) -> "NormalizationStudy":
        """Return the study from the three experiments' runs (a run or a list of seeds' runs each).

        `mismatched_eval`: an `evaluate` result of the first `correct` run without normalization, checked
        against the training loop's own last score of that run.
        """
        correct, fixed = _as_list(correct), _as_list(fixed)
        return cls(baseline=final_spread(baseline), matched=scored_spread(correct, True),
                   mismatched=scored_spread(correct, False), train_loss=column_spread(correct, "train_loss"),
                   fix_lr=float(fixed[0].config["lr"]), fix_mismatched=scored_spread(fixed, False),
                   fix_matched=scored_spread(fixed, True), fix_train_loss=column_spread(fixed, "train_loss"),
                   mismatch_eval_acc=None if mismatched_eval is None else float(mismatched_eval["acc"]),
                   mismatch_curve_acc=scored(correct[0], False))


def normalization_table(s: NormalizationStudy, lr: float) -> pd.DataFrame:
    """Return one row per (training, test-time transform) setting, mean ± sd (n), with the report's figure."""
    fix = REPORT_NORMALIZE["fix_test_acc"]
    rows = [
        ("none (baseline)", lr, "ToTensor", "ToTensor", None, s.baseline, REPORT_TEST_ACC["none"], ""),
        ("normalize, correct pipeline", lr, "Normalize", "Normalize", s.train_loss, s.matched, None, ""),
        ("normalize, test without Normalize", lr, "Normalize", "ToTensor", s.train_loss, s.mismatched,
         REPORT_NORMALIZE["test_acc"], REPORT_READING["collapse"]),
        (f"normalize, lr {s.fix_lr}, test without Normalize", s.fix_lr, "Normalize", "ToTensor",
         s.fix_train_loss, s.fix_mismatched, fix, REPORT_READING["fix"]),
        (f"normalize, lr {s.fix_lr}, correct pipeline", s.fix_lr, "Normalize", "Normalize",
         s.fix_train_loss, s.fix_matched, fix, REPORT_READING["fix"]),
    ]
    df = pd.DataFrame(rows, columns=["setting", "lr", "train transform", "test transform", "final train loss",
                                     "measured test acc (%)", "report test acc (%)", "report's test transform"])
    df["report test acc (%)"] = pd.to_numeric(df["report test acc (%)"], errors="coerce")
    return df


def experiments(lr: float, fix_lr: float, profile: str = "full") -> list[str]:
    """Return the names of the study's experiments in a profile, whose reference spread judges single seeds."""
    return [experiment_name(make_config(profile, recipe=r, lr=x, data_dir="synthetic"))
            for r, x in (("none", lr), ("normalize", lr), ("normalize", fix_lr))]


def _loss_of(a, b, ref) -> tuple:
    """Return (comparison, whether A differs from B, lower by more than RECOVER_POINTS)."""
    c = judge(a, b, ref)
    return c, c.verdict == "lower" and -c.diff > RECOVER_POINTS


def normalization_conclusion(s: NormalizationStudy, cfg: Config, ref: Reference = NO_REFERENCE) -> Markdown:
    """Return the conclusion of notebook 03, decided from the measurements by the rule and the effect sizes."""
    c_mis = judge(s.mismatched, s.matched, ref)
    collapse = c_mis.verdict == "lower" and -c_mis.diff > COLLAPSE_POINTS
    c_base, below_base = _loss_of(s.matched, s.baseline, ref)
    out = [f"Effect sizes: a *collapse* is a drop of more than {COLLAPSE_POINTS:.0f} points that differs under the rule; "
           f"*as good as* means not both lower by more than {RECOVER_POINTS:.0f} points and different under the rule.", ""]
    # 1. the mismatch hypothesis
    if collapse and not below_base:
        out.append(f"**The mismatch hypothesis is supported.** The same trained weights score "
                   f"{pct(s.matched)} when the test images are normalized like the training images and "
                   f"{pct(s.mismatched)} when they are not ({verdict(c_mis, 'without', 'with')}): the collapse "
                   f"comes from the test-time transform alone. With the correct pipeline, normalization is as good "
                   f"as the baseline ({pct(s.baseline)}; {verdict(c_base, 'normalize', 'the baseline')}).")
    elif collapse:
        out.append(f"**Partly supported.** Dropping Normalize at test time collapses accuracy "
                   f"({pct(s.matched)} → {pct(s.mismatched)}), but even the correct pipeline stays "
                   f"more than {RECOVER_POINTS:.0f} points below the baseline ({pct(s.baseline)}; "
                   f"{verdict(c_base, 'normalize', 'the baseline')}): the mismatch is not the whole story.")
    else:
        out.append(f"**The measurements do not support the mismatch hypothesis here.** Testing the "
                   f"normalize-trained weights without normalization gives {pct(s.mismatched)}, against "
                   f"{pct(s.matched)} with it ({verdict(c_mis, 'without', 'with')}): no collapse (a difference under the rule) of "
                   f"more than {COLLAPSE_POINTS:.0f} points, so these runs do not show the report's failure this way.")
    # 2. the report's explanation: overfitting
    if collapse:
        out.append(f"\n**Overfitting does not explain it.** Both evaluations use the same models with one final "
                   f"training loss ({s.train_loss.format(4, unit='')}); overfitting would lower both, yet only the "
                   f"mismatched one collapses.")
    else:
        out.append(f"\nThe final training loss is {s.train_loss.format(4, unit='')}; without a collapse, there is "
                   "no failure here for overfitting to explain.")
    # 3. consistency: the training loop's own per-epoch score without normalization (first seed)
    if s.mismatch_eval_acc is not None and s.mismatch_curve_acc is not None:
        same = abs(s.mismatch_curve_acc - s.mismatch_eval_acc) < 0.01
        out.append(f"\nScored without normalization after every epoch during training, the first seed's run ends at "
                   f"{pct(s.mismatch_curve_acc)}; " + (
                       "exactly the figure of the separate evaluation above: the training loop and `evaluate` "
                       "agree, so the per-epoch curve shows the report's setup." if same else
                       f"the separate evaluation gave {pct(s.mismatch_eval_acc)}: the two disagree, so the "
                       "per-epoch curve of the report's setup should be read with caution."))
    # 4. the report's fix: a larger learning rate
    fix, fix_comparisons = _fix_paragraph(s, cfg, ref)
    out.append(fix)
    comparisons = [c_mis, c_base, *fix_comparisons]
    out.append("\n" + comparability(cfg) + "\n\n" + rule_note(comparisons, ref))
    return md("\n".join(out))


def _fix_paragraph(s: NormalizationStudy, cfg: Config, ref: Reference) -> tuple[str, list]:
    """Return the paragraph on the report's fix (a larger lr), judged under the rule, and its comparisons."""
    c_fix, short_of_matched = _loss_of(s.fix_mismatched, s.matched, ref)
    c_gain = judge(s.fix_mismatched, s.mismatched, ref)
    used = [c_fix, c_gain]
    improved = c_gain.verdict == "higher" and c_gain.diff > RECOVER_POINTS
    text = (f"\n**The report's fix (lr {s.fix_lr}), read as written** (only the learning rate changed). Still "
            f"tested without normalization, it gives {pct(s.fix_mismatched)} (lr {cfg.lr}: {pct(s.mismatched)}; "
            f"the report: {pct(REPORT_NORMALIZE['fix_test_acc'])}, test transform {REPORT_READING['fix']}). ")
    if not short_of_matched:
        text += ("Here the larger learning rate does make the mismatched evaluation about as good as the "
                 f"correct pipeline ({verdict(c_fix, 'lr ' + str(s.fix_lr), 'the correct pipeline')}) — the "
                 "report's observation is reproduced, but the mismatch remains in the pipeline.")
    elif improved:
        text += ("It improves the mismatched evaluation but does not reach the correct pipeline "
                 f"({pct(s.matched)}): a partial, accidental repair.")
    else:
        text += "It does **not** repair the mismatched evaluation here"
        if is_comparable(cfg):
            c_rep = judge(s.fix_mismatched, [REPORT_NORMALIZE["fix_test_acc"]], ref)
            used.append(c_rep)
            text += (", **below the report's** " + pct(REPORT_NORMALIZE["fix_test_acc"])
                     if c_rep.verdict == "lower" else "") + f" ({verdict(c_rep, 'measured', 'the report')})."
        else:
            text += (f"; the report's {pct(REPORT_NORMALIZE['fix_test_acc'])} is from its own scale, which "
                     f"profile `{cfg.profile}` does not reproduce.")
    c_lr = judge(s.fix_matched, s.matched, ref)
    used.append(c_lr)
    text += (f" With the correct pipeline, lr {s.fix_lr} gives {pct(s.fix_matched)} against "
             f"{pct(s.matched)} at lr {cfg.lr}"
             + (": here the larger rate is better in itself." if c_lr.verdict == "higher" and c_lr.diff > RECOVER_POINTS
                else ": here the larger rate is worse in itself (a difference under the rule)." if c_lr.verdict == "lower"
                else ": the larger rate itself is no improvement."))
    return text, used


# ---- at the report's scale: the full-scale reference runs ------------------------------------------

@dataclasses.dataclass
class FullScale:
    """The full-scale reference runs of the study's normalizing settings (accuracy percent per seed)."""
    matched: Spread          # lr, tested with Normalize
    mismatched: Spread       # lr, tested without Normalize (the report's setup)
    fix_matched: Spread      # fix_lr, tested with Normalize
    fix_mismatched: Spread   # fix_lr, tested without Normalize
    ref: Reference
    lr: float = 0.1
    fix_lr: float = 0.5

    @classmethod
    def load(cls, lr: float = 0.1, fix_lr: float = 0.5, profile: str = "full") -> "FullScale":
        """Return the study's settings as stored in the profile's reference folder (empty Spreads where missing)."""
        from .results import reference_sd, stored_spread
        names = experiments(lr, fix_lr, profile)
        return cls(*(stored_spread(profile, name, raw) for name in names[1:] for raw in (False, True)),
                   ref=reference_sd(profile, names), lr=lr, fix_lr=fix_lr)

    def settings(self) -> dict:
        """Return {label: Spread} of the four settings."""
        return {f"lr {self.lr}, tested with Normalize": self.matched,
                f"lr {self.lr}, tested without Normalize": self.mismatched,
                f"lr {self.fix_lr}, tested with Normalize": self.fix_matched,
                f"lr {self.fix_lr}, tested without Normalize": self.fix_mismatched}


def _where(x: float, values) -> str:
    """Return where x lies against a range of values: inside it, or how far above or below."""
    lo, hi = min(values), max(values)
    if lo <= x <= hi:
        return f"inside their range ({pct(lo)}–{pct(hi)})"
    return f"{x - hi:.2f} points above their range ({pct(lo)}–{pct(hi)})" if x > hi else \
        f"{lo - x:.2f} points below their range ({pct(lo)}–{pct(hi)})"


def full_scale_conclusion(fs: FullScale) -> Markdown:
    """Return what the full-scale reference supports about the report's ≈30% and 76.37%, and what it leaves open."""
    folder = f"`{fs.ref.folder}`"
    missing = [k for k, s in fs.settings().items() if s.n == 0]
    if missing:
        return md(f"**At the report's scale.** The reference folder {folder} holds no run for "
                  f"{', '.join(missing)}: the report's ≈30% and {pct(REPORT_NORMALIZE['fix_test_acc'])} cannot be "
                  "set beside runs of its own scale in this checkout.")
    low, fixed_fig = REPORT_NORMALIZE["test_acc"], REPORT_NORMALIZE["fix_test_acc"]
    ns = sorted({s.n for s in fs.settings().values()})
    c_mis = judge(fs.mismatched, fs.matched, fs.ref)
    c_fix = judge([fixed_fig], fs.fix_mismatched, fs.ref)
    c_hyp = judge([fixed_fig], fs.fix_matched, fs.ref)
    with_norm = fs.matched.values + fs.fix_matched.values
    without = fs.mismatched.values + fs.fix_mismatched.values
    supported, left_open = [], []
    measured = (f"The same lr-{fs.lr} weights score {pct(fs.matched)} with Normalize at test time and "
                f"{pct(fs.mismatched)} without ({verdict(c_mis, 'without', 'with')}). The report's ≈{low:.0f}% is "
                f"{_where(low, fs.mismatched.values)} for the runs tested without Normalize, and "
                f"{fs.matched.mean - low:.2f} points below the runs tested with it.")
    if c_mis.verdict == "lower":
        supported.append("**The collapse is the train/test transform mismatch.** " + measured)
    else:
        left_open.append("Whether the collapse is the train/test transform mismatch. " + measured)
    lr_said = (f"Tested without Normalize, the lr-{fs.fix_lr} weights score {pct(fs.fix_mismatched)}; "
               f"{verdict(c_fix, 'the report', 'them')}.")
    if c_fix.verdict == "higher":
        supported.append(f"**lr {fs.fix_lr} does not turn the mismatched pipeline into {pct(fixed_fig)}.** " + lr_said)
    else:
        left_open.append(f"Whether lr {fs.fix_lr} could turn the mismatched pipeline into the report's "
                         f"{pct(fixed_fig)}. " + lr_said)
    left_open.append(f"Which test transform the report's lr-{fs.fix_lr} run used: its code for that run is not "
                     "shown, so the hypothesis above cannot be checked against it.")
    if c_hyp.verdict == "higher":
        left_open.append(f"What else lifted the report's run: {pct(fixed_fig)} differs from the lr-{fs.fix_lr} "
                         f"run tested with Normalize ({pct(fs.fix_matched)}), above it, so even the hypothesis does not "
                         "account for all of it.")
    if not fs.ref.measured:
        left_open.append(f"The seed-to-seed spread at this scale: the reference holds {'/'.join(map(str, ns))} "
                         "seed(s) per setting, so every difference above with one seed a side is not judged "
                         "under the rule.")
    elif fs.ref.borrowed:
        left_open.append(f"The seed-to-seed spread at this scale itself: the reference holds "
                         f"{'/'.join(map(str, ns))} seed(s) per setting, so the tests above use the spread "
                         f"measured in `{fs.ref.sd_folder}` (see the rule); a verdict with p near 0.05 may change "
                         "once more seeds at this scale are added.")
    out = [f"**At the report's scale** (full profile, the reference runs in {folder}, "
           f"n={'/'.join(map(str, ns))} seed(s) per setting):", "", "*What the figures support.*", ""]
    out += [f"- {t}" for t in supported] or ["- Under the rule, nothing yet: see what they leave open."]
    out += ["", f"*What the report's {pct(fixed_fig)} is consistent with (a hypothesis, not a fact).*", "",
            f"It lies {_where(fixed_fig, with_norm)} for the runs tested **with** Normalize and "
            f"{_where(fixed_fig, without)} for those tested without. That is consistent with the report having "
            f"fixed the pipeline along with the learning rate, i.e. with its lr-{fs.fix_lr} run tested **with** "
            f"Normalize, which here scores {pct(fs.fix_matched)} ({verdict(c_hyp, 'the report', 'that setting')}).",
            "", "*What they leave open.*", ""]
    out += [f"- {t}" for t in left_open]
    out += ["", rule_note([c_mis, c_fix, c_hyp], fs.ref)]
    return md("\n".join(out))


def full_scale_table(fs: FullScale) -> pd.DataFrame:
    """Return the full-scale reference's four settings (mean ± sd, n) beside the report's figures."""
    fix = (REPORT_NORMALIZE["fix_test_acc"], REPORT_READING["fix"])
    report = {f"lr {fs.lr}, tested without Normalize": (REPORT_NORMALIZE["test_acc"], REPORT_READING["collapse"]),
              f"lr {fs.fix_lr}, tested without Normalize": fix, f"lr {fs.fix_lr}, tested with Normalize": fix}
    rows = []
    for setting, measured in fs.settings().items():
        figure, reading = report.get(setting, (float("nan"), ""))
        rows.append({"setting (recipe normalize)": setting, f"reference runs, {fs.ref.folder} (%)": measured,
                     "report (%)": figure, "report's test transform": reading})
    return pd.DataFrame(rows)
