"""Notebook 01's tables and verdicts: stage shapes, the baseline's accuracy across seeds, classes, checkpoints."""
from __future__ import annotations

import pandas as pd
from IPython.display import Markdown

from helpers.core.config import Config, scaled_report_epochs
from .results import (NO_REFERENCE, REPORT_TEST_ACC, Reference, _as_list, final_spread, is_comparable, judged,
                      report_side)
from helpers.core.stats import Verdict, spread


def stage_table(shapes_by_stem: dict) -> pd.DataFrame:
    """Return a table of each stage's output shape (C×H×W) per stem."""
    first = next(iter(shapes_by_stem.values()))
    return pd.DataFrame({"stage": [stage for stage, _ in first],
                         **{f"{stem} stem": ["×".join(map(str, shape)) for _, shape in shapes]
                            for stem, shapes in shapes_by_stem.items()}})


def stage_note(shapes_by_stem: dict) -> Markdown:
    """Return what the layer4 shapes mean for a CAM on that layer, read from the measured shapes."""
    layer4 = {stem: dict(shapes)["layer4"] for stem, shapes in shapes_by_stem.items()}
    return Markdown("\n".join(f"- **{stem} stem**: layer4 is {c}×{hh}×{ww}, " + (
        "a single spatial position: a CAM on it is uniform and cannot say *where* the evidence is." if hh * ww == 1
        else f"{hh * ww} positions: a coarse but real map for a CAM to show.") for stem, (c, hh, ww) in layer4.items()))


def accuracy_table(runs, per_seed: bool = False) -> pd.DataFrame:
    """Return the report's test accuracy and the measured final/best test and final train accuracy across seeds."""
    runs = _as_list(runs)
    groups = [("all seeds", runs)] + ([(f"seed {r.config.get('seed')}", [r]) for r in runs] if per_seed else [])
    return pd.DataFrame([{"runs": label, "report test acc (%)": REPORT_TEST_ACC["none"] if rs is runs else None,
                          "final test acc (%)": final_spread(rs), "best test acc (%)": spread(r.best_acc for r in rs),
                          "final train acc (%)": final_spread(rs, "train_acc")} for label, rs in groups])


def baseline_verdicts(runs, cfg: Config, ref: Reference = NO_REFERENCE) -> list[Verdict]:
    """Return notebook 01's verdicts on the final test accuracy: against the best epoch's, train's and the report's."""
    t = accuracy_table(runs).iloc[0]
    final, best, train = t["final test acc (%)"], t["best test acc (%)"], t["final train acc (%)"]
    return judged([("the last epoch is as good as the best one", "last epoch", final, "best epoch", best),
                   ("training accuracy exceeds test accuracy (overfitting)", "train", train, "test", final),
                   ("the baseline's test accuracy matches the report's", "measured", final, "the report",
                    report_side(REPORT_TEST_ACC["none"], is_comparable(cfg)))], ref)


def per_class_note(metrics: dict) -> Markdown:
    """Return the best and worst classes and the most frequent confusion, read from the metrics."""
    acc, cm = metrics["per_class_acc"], metrics["confusion"]
    classes, ranked = list(acc), sorted(acc, key=acc.get)
    n, i, j = max((cm[i][j], i, j) for i in range(len(cm)) for j in range(len(cm)) if i != j)
    return Markdown(f"Best class: **{ranked[-1]}** ({acc[ranked[-1]]:.2f}%); worst: **{ranked[0]}** "
                    f"({acc[ranked[0]]:.2f}%); spread {acc[ranked[-1]] - acc[ranked[0]]:.1f} points. "
                    f"The most frequent mistake is a true **{classes[i]}** predicted as **{classes[j]}** "
                    f"({n} of {sum(cm[i])} test images of that class).")


def checkpoints_table(run, cfg: Config) -> pd.DataFrame:
    """Return the report's CAM epochs, this profile's stand-in epochs and whether their weights are stored."""
    acc, rows = run.history.set_index("epoch")["test_acc"], []
    for report_epoch, epoch in scaled_report_epochs(cfg).items():
        try:
            file = run.checkpoint_path(epoch).name
        except ValueError:
            file = ""
        rows.append((report_epoch, epoch, float(acc.get(epoch, float("nan"))), bool(file), file))
    return pd.DataFrame(rows, columns=["report's epoch", "this profile's epoch", "test acc at that epoch (%)",
                                       "weights stored", "file"])
