"""Notebook 01's tables and rendered text: stage shapes, the baseline's accuracy across seeds, classes, checkpoints."""
from __future__ import annotations

import pandas as pd
from IPython.display import Markdown

from .config import Config, scaled_report_epochs
from .results import (NO_REFERENCE, REPORT_PROTOCOL, Reference, _as_list, column_spread, final_spread, is_comparable,
                      judge, md, pct, rule_note, verdict)
from .stats import spread


def stage_table(shapes_by_stem: dict) -> pd.DataFrame:
    """Return a table of each stage's output shape (C×H×W) per stem."""
    stems = list(shapes_by_stem)
    stages = [s for s, _ in shapes_by_stem[stems[0]]]
    rows = []
    for s in stages:
        row = {"stage": s}
        for stem in stems:
            shape = dict(shapes_by_stem[stem])[s]
            row[f"{stem} stem"] = "×".join(map(str, shape))
        rows.append(row)
    return pd.DataFrame(rows)


def stage_note(shapes_by_stem: dict) -> Markdown:
    """Return what the layer4 shapes mean for a CAM on that layer, read from the measured shapes."""
    lines = []
    for stem, shapes in shapes_by_stem.items():
        c, hh, ww = dict(shapes)["layer4"]
        if hh == 1 and ww == 1:
            lines.append(f"- **{stem} stem**: layer4 is {c}×{hh}×{ww}: a single spatial position. "
                         "A class activation map on layer4 has one value, so upsampled to 32×32 it is "
                         "uniform: it cannot say *where* the evidence is.")
        else:
            lines.append(f"- **{stem} stem**: layer4 is {c}×{hh}×{ww}: a coarse but real spatial map "
                         f"({hh * ww} positions) for a CAM to show.")
    return md("\n".join(lines))


def accuracy_table(runs, per_seed: bool = False) -> pd.DataFrame:
    """Return final/best test and final train accuracy across seeds (mean ± sd, n); one row per seed if asked."""
    runs = _as_list(runs)
    rows = [{"runs": "all seeds", "final test acc (%)": final_spread(runs),
             "best test acc (%)": spread(r.best_acc for r in runs),
             "final train acc (%)": column_spread(runs, "train_acc")}]
    if per_seed:
        rows += [{"runs": f"seed {r.config.get('seed')}", "final test acc (%)": spread([r.final_acc]),
                  "best test acc (%)": spread([r.best_acc]), "final train acc (%)": column_spread([r], "train_acc")}
                 for r in runs]
    return pd.DataFrame(rows)


def accuracy_note(runs, report_acc: float | None, cfg: Config, what: str = "The baseline",
                  ref: Reference = NO_REFERENCE) -> Markdown:
    """Return the runs' final and best test accuracy (mean ± sd over seeds) beside the report's, with a verdict."""
    runs = _as_list(runs)
    final, best = final_spread(runs), spread(r.best_acc for r in runs)
    train = column_spread(runs, "train_acc")
    epochs = len(runs[0].history)
    best_epochs = ", ".join(str(int(r.metrics["best_epoch"])) for r in runs)
    text = (f"{what} reaches **{pct(final)}** test accuracy after its last epoch ({epochs}) "
            f"and **{pct(best)}** at its best epoch ({best_epochs}). "
            f"The report's figure: **{pct(report_acc)}** after {REPORT_PROTOCOL['epochs']} epochs on all "
            f"{REPORT_PROTOCOL['train_images']:,} training images, one run.")
    if report_acc is None:
        judged = "The report has no figure for this run."
    elif is_comparable(cfg):
        c = judge(final, [report_acc], ref)
        judged = (verdict(c, "Measured", "the report") + ": "
                  + ("the measurement **is consistent with** the report." if c.judged and not c.resolved else
                     "the seed-to-seed spread is not known well enough to say whether the measurement "
                     "is consistent with the report." if not c.judged else
                     f"the measurement **differs** from the report ({c.n_text}).")
                  + "  \n" + rule_note([c], ref))
    else:
        judged = (f"The gap to the report ({final.mean - report_acc:+.2f} points) is expected from the smaller "
                  f"`{cfg.profile}` profile and says nothing about the report's figure.")
    gap_points = train.mean - final.mean
    gap = (f"Training accuracy (on the training batches, during the last epoch) is {pct(train)}: "
           f"a train–test gap of {gap_points:.1f} points")
    gap += (", i.e. the model fits its training images far better than it generalizes (overfitting)."
            if gap_points > 10 else
            " (negative: training accuracy is counted while the weights still change during the epoch, "
            "the test accuracy after it)." if gap_points < 0 else ".")
    note = ""
    if best.mean - final.mean > 1.0:
        note = (f" The last epoch is {best.mean - final.mean:.2f} points below the best one on average: "
                "the final figure is not the peak.")
    return md(f"{text}\n\n{judged}{note}\n\n{gap}")


def per_class_note(metrics: dict) -> Markdown:
    """Return the best and worst classes and the most frequent confusion, read from the metrics."""
    acc = metrics["per_class_acc"]
    classes = list(acc)
    ranked = sorted(acc, key=acc.get)
    cm = metrics["confusion"]
    worst_pair = max(((cm[i][j], i, j) for i in range(len(cm)) for j in range(len(cm)) if i != j))
    n, i, j = worst_pair
    return md(f"Best class: **{ranked[-1]}** ({pct(acc[ranked[-1]])}); worst: **{ranked[0]}** "
              f"({pct(acc[ranked[0]])}); spread {acc[ranked[-1]] - acc[ranked[0]]:.1f} points. "
              f"The most frequent mistake is a true **{classes[i]}** predicted as **{classes[j]}** "
              f"({n} of {sum(cm[i])} test images of that class).")


def checkpoints_table(run, cfg: Config) -> pd.DataFrame:
    """Return the report's CAM epochs, this profile's stand-in epochs and whether their weights are stored."""
    rows = []
    for report_epoch, epoch in scaled_report_epochs(cfg).items():
        try:
            path = run.checkpoint_path(epoch)
            stored, where = True, path.name
        except ValueError:
            stored, where = False, ""
        acc = run.history.loc[run.history["epoch"] == epoch, "test_acc"]
        rows.append({"report's epoch": report_epoch, "this profile's epoch": epoch,
                     "test acc at that epoch (%)": float(acc.iloc[0]) if len(acc) else float("nan"),
                     "weights stored": stored, "file": where})
    return pd.DataFrame(rows)
