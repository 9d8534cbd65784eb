"""Notebook 05: the `fast` recipe against the report's protocol, accuracy per epoch and per minute, and the verdicts.
The fast run's per-epoch curve is on a validation split; it scores the test set once, at the end."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from helpers.core.config import Config
from .plots import draw_mean_band, stack_column
from .results import (NO_REFERENCE, REPORT_TEST_ACC, Reference, _as_list, is_comparable, judged, report_side,
                      seed_columns)
from helpers.core.stats import Verdict, spread

REPORT_BEST = max(v for v in REPORT_TEST_ACC.values() if v is not None)  # the crop run, 83.98%
TEST = "test acc (%)"


def default_validation(cfg_train_size: int | None) -> int:
    """Return the validation hold-out for a training-set size: a tenth, at least 100 images, at most half the set."""
    n = cfg_train_size or 50_000
    return min(max(100, n // 10), n // 2)


def heldout_acc(run) -> float:
    """Return the run's test accuracy: its held-out test score when its curve is on a validation split."""
    return float(run.metrics["heldout_test_acc"]) if run.metrics.get("eval_set") == "validation" else run.final_acc


LABELS = ("report protocol (crop, StepLR)", "fast (crop+flip, OneCycle)")


def speed_table(reference, fast, target: float = REPORT_BEST, per_seed: bool = False) -> pd.DataFrame:
    """Return one row per experiment: schedule, epochs, minutes, accuracies, the epoch the mean curve reached target."""
    rows = []
    for label, runs in zip(LABELS, map(_as_list, (reference, fast))):
        mean = pd.concat(r.history for r in runs).groupby("epoch")[["test_acc", "seconds"]].mean()
        epoch = next((int(e) for e in mean.index[mean["test_acc"] >= target]), None)
        rows.append({"run": label, "schedule": runs[0].config.get("schedule", "step"), "epochs": len(runs[0].history),
                     "minutes": spread(r.history["seconds"].sum() / 60 for r in runs),
                     "per-epoch curve on": ("validation split" if runs[0].metrics.get("eval_set") == "validation"
                                            else "test set"),
                     "final curve acc (%)": spread(r.final_acc for r in runs), TEST: spread(map(heldout_acc, runs)),
                     f"mean curve: first epoch ≥ {target:.2f}%": epoch,
                     "minutes to it": None if epoch is None else float(mean.loc[:epoch, "seconds"].sum() / 60)})
    df = pd.DataFrame(rows)
    return (seed_columns(df, dict(zip(LABELS, (reference, fast))), "run", value=heldout_acc,
                         name="seed {seed} test (%)") if per_seed else df)


def plot_speed(reference, fast, target: float = REPORT_BEST, axes=None):
    """Draw accuracy per epoch and per minute of both experiments (mean, min–max band, target); return the Figure."""
    axes = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")[1] if axes is None else axes
    for label, runs, color in (("report protocol (test)", reference, "tab:green"),
                               ("fast (validation)", fast, "tab:red")):
        hs = [r.history for r in _as_list(runs)]
        epochs, ys = stack_column(hs, "test_acc")
        name = label if len(hs) == 1 else f"{label}, mean of {len(hs)}"
        for ax, x in zip(axes, (epochs, stack_column(hs, "seconds")[1].cumsum(axis=1).mean(axis=0) / 60)):
            draw_mean_band(ax, x, ys, color, name, marker=".")
    titles = ("Accuracy per epoch (band: min–max over seeds)", "Accuracy per minute of training")
    for ax, xlabel, title in zip(axes, ("epoch", "minutes of training (this machine)"), titles):
        ax.axhline(target, color="grey", ls="--", lw=1, label=f"report's best, {target:.2f}%")
        ax.set(xlabel=xlabel, ylabel="accuracy (%)", title=title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return axes[0].figure


def speed_verdicts(table: pd.DataFrame, cfg: Config, ref: Reference = NO_REFERENCE,
                   target: float = REPORT_BEST) -> list[Verdict]:
    """Return notebook 05's verdicts: fast against the protocol, and against the report's best where `cfg` compares."""
    protocol, fast = table.iloc[0][TEST], table.iloc[1][TEST]
    return judged([("the fast recipe is as accurate as the report's protocol", "fast", fast, "protocol", protocol),
                   ("the fast recipe reaches the report's best figure", "fast", fast, "the report",
                    report_side(target, is_comparable(cfg)))], ref)
