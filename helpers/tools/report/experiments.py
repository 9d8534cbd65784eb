"""The study's experiments as the landing page and the README show them: a label, the report's figure, the
full-scale reference (report/reference/full) and this build's runs, grouped by experiment name over seeds."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from helpers.core.config import FIELDS, Config
from helpers.core.runs import RECORD, is_complete, read_json
from helpers.core.stats import Spread, spread
from helpers.tools.reference import reference_matches, scored
from .notebooks import ReportError

# Short names for the summary tables; the report's figures themselves come from helpers.notebook.results.
RECIPE_LABELS = {"none": "no augmentation", "flip_rotate": "random flip + rotation", "crop": "random crop",
                 "crop_flip": "random crop + flip", "normalize": "normalization", "fast": "fast recipe"}
FULL_SCALE = "full"  # the reference profile set beside every build: report/reference/full


def row_label(experiment: str, lr: float, raw: bool = False) -> str:
    """Return an experiment's label in the tables: the recipe in words, the lr, the test transform, the rest."""
    recipe, *rest = experiment.split(", ")
    return ", ".join([RECIPE_LABELS.get(recipe, recipe), f"lr {lr:g}"] + ["tested without normalization"] * raw
                     + [p for p in rest if not p.startswith("lr ")])


def report_figure(experiment: str, lr: float, raw: bool = False) -> tuple[float, str] | None:
    """Return (accuracy, as the report writes it) if the experiment (lr aside, at any length) is the report's."""
    from helpers.notebook.results import REPORT_NORMALIZE, REPORT_PROTOCOL, REPORT_READING, REPORT_TEST_ACC
    recipe, *rest = experiment.split(", ")
    if any(not p.startswith("lr ") for p in rest):
        return None
    # Its 76.37% goes to both lr-0.5 rows, since the test transform of that run is not shown (notebook 03); its ≈30%
    # to the lr-0.1 normalize run tested without Normalize only (our reading; it never tested with Normalize).
    if recipe == "normalize" and lr == REPORT_NORMALIZE["fix_lr"]:
        return REPORT_NORMALIZE["fix_test_acc"], f"{REPORT_NORMALIZE['fix_test_acc']:.2f}% (test transform " \
                                                 f"{REPORT_READING['fix']})"
    if recipe == "normalize" and lr == REPORT_PROTOCOL["lr"]:
        return (REPORT_NORMALIZE["test_acc"], f"≈{REPORT_NORMALIZE['test_acc']:.0f}%") if raw else None
    if lr == REPORT_PROTOCOL["lr"] and REPORT_TEST_ACC.get(recipe) is not None:
        return REPORT_TEST_ACC[recipe], f"{REPORT_TEST_ACC[recipe]:.2f}%"
    return None


def experiment_rows(executed, pages: list[dict]) -> list[dict]:
    """Return a row per experiment the notebooks used (over seeds; with and without Normalize if it normalizes)."""
    from helpers.notebook.results import is_comparable
    used = {}
    for e, page in zip(executed, pages):
        for run_path in e.runs:
            if not is_complete(run_path):
                raise ReportError(f"run {run_path} used by {e.source.name} is no longer in the run store; "
                                  "rerun the report")
            r = read_json(Path(run_path) / RECORD)
            used.setdefault(run_path, {**r["results"], "experiment": r["experiment"], "config": r["config"],
                                       "folder": Path(run_path).name, "notebook": page["title"], "href": page["href"]})
    runs, rows = pd.DataFrame(list(used.values())), []
    for (name, raw), group in (scored(runs).groupby(["experiment", "raw"], sort=False) if len(runs) else ()):
        first, measured, raw = group.iloc[0], spread(group["score"]), bool(raw)
        ref = reference_matches(FULL_SCALE, name, raw)  # the full-scale reference's runs of this experiment
        conf = first["config"]
        figure = report_figure(name, conf["lr"], raw)
        config = Config(**{k: tuple(v) if k == "snapshot_epochs" else v for k, v in conf.items() if k in FIELDS})
        comparable = figure is not None and is_comparable(config)
        rows.append({"experiment": row_label(name, conf["lr"], raw), "name": name, "raw": raw, "epochs": conf["epochs"],
                     "runs": list(group["folder"]), "notebook": first["notebook"], "href": first["href"],
                     "train_images": first.get("train_images"), "source": first.get("data_source"),
                     "report": figure[1] if figure else None, "reference": None if ref.empty else {
                         "spread": spread(ref["score"]), "devices": sorted(set(ref["device"].dropna())),
                         "epochs": sorted(set(ref["epochs"])), "folders": list(ref["folder"])},
                     "build": measured, "measured": measured.mean, "best": spread(group["best"]).mean,
                     "difference": measured.mean - figure[0] if comparable else None})
    return rows


def format_spread(s: Spread, digits: int = 2) -> str:
    """Return 'mean ± sd', or the single value, with a % sign ('–' when empty); n is shown beside it."""
    return s.format(digits).removesuffix(f" (n={s.n})")
