"""The `fast` recipe against the report's protocol: accuracy per epoch and per minute, and the verdicts.

The fast run holds out a validation split of the training set: its per-epoch curve is measured on
that split, so nothing about the schedule was chosen by looking at the test set, which the run
scores exactly once, at the end. Both experiments run over the same seeds; tables show mean ± sd (n).
"""
from __future__ import annotations


import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .plots import draw_mean_band
from .results import NO_REFERENCE, REPORT_TEST_ACC, Reference, _as_list, judge, seed_columns
from .stats import Verdict, spread

REPORT_BEST = max(v for v in REPORT_TEST_ACC.values() if v is not None)  # the crop run, 83.98%
TEST = "test acc (%)"


def default_validation(cfg_train_size: int | None) -> int:
    """Return the validation hold-out for a training-set size: a tenth, at least 100 images."""
    return max(100, (cfg_train_size or 50_000) // 10)


def first_reaching(history: pd.DataFrame, target: float, column: str = "test_acc"):
    """Return (epoch, minutes of training so far) of the first epoch at or above target, else (None, None)."""
    hit = history[history[column] >= target]
    if hit.empty:
        return None, None
    e = int(hit["epoch"].iloc[0])
    return e, float(history.loc[history["epoch"] <= e, "seconds"].sum() / 60)


def heldout_acc(run) -> float:
    """Return the run's test accuracy: its held-out test score when its curve is on a validation split."""
    return float(run.metrics["heldout_test_acc"]) if run.metrics.get("eval_set") == "validation" else run.final_acc


def mean_history(runs) -> pd.DataFrame:
    """Return the epoch-by-epoch mean of the runs' histories (epochs they all have)."""
    hs = [r.history for r in _as_list(runs)]
    n = min(len(h) for h in hs)
    return sum(h.iloc[:n][["epoch", "test_acc", "seconds"]].reset_index(drop=True) for h in hs) / len(hs)


LABELS = ("report protocol (crop, StepLR)", "fast (crop+flip, OneCycle)")


def speed_table(reference, fast, target: float = REPORT_BEST, per_seed: bool = False) -> pd.DataFrame:
    """Return one row per experiment: schedule, epochs, minutes and accuracies (mean ± sd, n), and when the
    mean curve first reached the target; each seed's test accuracy if asked."""
    rows = []
    for label, runs in zip(LABELS, (reference, fast)):
        runs = _as_list(runs)
        c = runs[0].config
        validation = runs[0].metrics.get("eval_set") == "validation"
        epoch, minutes = first_reaching(mean_history(runs), target)
        rows.append({"run": label, "schedule": c.get("schedule", "step"), "epochs": len(runs[0].history),
                     "minutes": spread(r.history["seconds"].sum() / 60 for r in runs),
                     "per-epoch curve on": "validation split" if validation else "test set",
                     "final curve acc (%)": spread(r.final_acc for r in runs),
                     TEST: spread(heldout_acc(r) for r in runs),
                     f"mean curve: first epoch ≥ {target:.2f}%": epoch, "minutes to it": minutes})
    df = pd.DataFrame(rows)
    if per_seed:
        df = seed_columns(df, dict(zip(LABELS, (reference, fast))), "run", value=heldout_acc,
                          name="seed {seed} test (%)")
    return df


def plot_speed(reference, fast, target: float = REPORT_BEST, axes=None):
    """Draw accuracy per epoch and per minute for both experiments (mean, min–max band), target marked;
    return the Figure."""
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    fig = axes[0].figure
    curves = (("report protocol (test)", reference, "tab:green"), ("fast (validation)", fast, "tab:red"))
    for label, runs, color in curves:
        runs = _as_list(runs)
        n = min(len(r.history) for r in runs)
        ys = np.array([r.history["test_acc"].to_numpy()[:n] for r in runs])
        minutes = np.mean([r.history["seconds"].cumsum().to_numpy()[:n] / 60 for r in runs], axis=0)
        name = label if len(runs) == 1 else f"{label}, mean of {len(runs)}"
        draw_mean_band(axes[0], runs[0].history["epoch"].to_numpy()[:n], ys, color, name, marker=".")
        draw_mean_band(axes[1], minutes, ys, color, name, marker=".")
    for ax, xlabel in zip(axes, ("epoch", "minutes of training (this machine)")):
        ax.axhline(target, color="grey", ls="--", lw=1, label=f"report's best, {target:.2f}%")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_title("Accuracy per epoch (band: min–max over seeds)")
    axes[1].set_title("Accuracy per minute of training")
    return fig


def speed_verdicts(table: pd.DataFrame, ref: Reference = NO_REFERENCE, target: float = REPORT_BEST) -> list[Verdict]:
    """Return notebook 05's verdicts: the fast recipe's test accuracy against the protocol's and the report's best."""
    protocol, fast = table.iloc[0][TEST], table.iloc[1][TEST]
    return [Verdict("the fast recipe is as accurate as the report's protocol", "fast", "protocol",
                    judge(fast, protocol, ref)),
            Verdict("the fast recipe reaches the report's best figure", "fast", "the report", judge(fast, [target], ref))]
