"""The study's experiments as the landing page and the README show them: a name, the report's figure, the
full-scale reference (report/reference/full) and this build's runs grouped over seeds (mean ± sd, n)."""
from __future__ import annotations

import json
from pathlib import Path

from ..config import FIELDS, Config, ConfigError, make_config
from ..reference import CURRENT, ReferenceMissingError, counterpart, experiment_key, reference_runs
from ..stats import Spread, spread
from .notebooks import ReportError

# Short names for the summary tables; the report's figures themselves come from helpers.results.
RECIPE_LABELS = {"none": "no augmentation", "flip_rotate": "random flip + rotation", "crop": "random crop",
                 "crop_flip": "random crop + flip", "normalize": "normalization", "fast": "fast recipe"}
PROTOCOL_EXTRAS = dict(stem="imagenet", schedule="step", label_smoothing=0.0, nesterov=False)
FULL_SCALE = "full"  # the reference profile set beside every build: report/reference/full


def report_figure(config: dict) -> tuple[float, str] | None:
    """Return (accuracy, as the report writes it) when the run is one of the report's experiments, else None.

    A run is one when it keeps the report's optimizer, batch and model (the length may be scaled by the
    profile) and uses a recipe and lr the report tried. The report's ≈30% goes to the lr-0.1 normalize run
    tested without Normalize only (our reading of what it measured; it never tested with Normalize). Its 76.37%
    goes to both lr-0.5 rows, marked, since which test transform that run used is not shown (notebook 03).
    """
    from ..results import REPORT_NORMALIZE, REPORT_PROTOCOL, REPORT_READING, REPORT_TEST_ACC
    keeps = (all(config.get(k) == REPORT_PROTOCOL[k] for k in ("momentum", "weight_decay", "gamma", "batch_size"))
             and all(config.get(k, v) == v for k, v in PROTOCOL_EXTRAS.items()))
    recipe, lr = config["recipe"], config["lr"]
    if not keeps:
        return None
    if recipe == "normalize" and lr == REPORT_NORMALIZE["fix_lr"]:
        fix = REPORT_NORMALIZE["fix_test_acc"]
        return fix, f"{fix:.2f}% (test transform {REPORT_READING['fix']})"
    if recipe == "normalize" and lr == REPORT_PROTOCOL["lr"]:
        if not config.get("mismatch"):
            return None
        return REPORT_NORMALIZE["test_acc"], f"≈{REPORT_NORMALIZE['test_acc']:.0f}%"
    if lr == REPORT_PROTOCOL["lr"] and REPORT_TEST_ACC.get(recipe) is not None:
        return REPORT_TEST_ACC[recipe], f"{REPORT_TEST_ACC[recipe]:.2f}%"
    return None


def _recipe_defaults(config: dict) -> dict:
    """Return the settings the run's profile gives its recipe (the fast recipe brings its own schedule)."""
    try:
        return make_config(config.get("profile", "full"), recipe=config["recipe"], data_dir="synthetic").to_dict()
    except (ConfigError, KeyError):
        return dict(PROTOCOL_EXTRAS)


def experiment_name(config: dict) -> str:
    """Return a short name for a run: its recipe, learning rate, and whatever departs from the report."""
    from ..results import REPORT_PROTOCOL
    own = _recipe_defaults(config)
    parts = [RECIPE_LABELS.get(config["recipe"], config["recipe"]), f"lr {config['lr']:g}"]
    if config.get("mismatch"):
        parts.append("tested without normalization")
    parts += [f"{k} {config.get(k)}" for k, v in PROTOCOL_EXTRAS.items() if config.get(k, v) != own.get(k, v)]
    parts += [f"{k} {config.get(k)}" for k in ("momentum", "weight_decay", "gamma", "batch_size")
              if config.get(k) != REPORT_PROTOCOL[k]]
    return ", ".join(parts)


def config_of(config: dict) -> Config:
    """Return the Config of a stored config.json (its known fields)."""
    values = {k: config[k] for k in FIELDS if k in config}
    values["snapshot_epochs"] = tuple(values.get("snapshot_epochs") or ())
    return Config(**values)


def reference_cell(config: dict, profile: str = FULL_SCALE, root=None) -> dict | None:
    """Return the reference's spread for this run's experiment at `profile`'s scale, with its runs' devices."""
    runs = counterpart(config, profile, root=root)
    if runs is None:
        return None
    return {"spread": spread(runs["score"]), "devices": sorted(set(runs["device"].dropna())),
            "epochs": sorted(set(runs["epochs"])), "train_images": sorted(set(runs["train_images"].dropna())),
            "folders": list(runs["folder"])}


def older_reference_runs(profile: str = FULL_SCALE, root=None) -> list[str]:
    """Return 'folder (why)' for each reference run from an older version: listed, never used."""
    try:
        runs = reference_runs(profile, root)
    except ReferenceMissingError:
        return []
    return [f"{r.folder} ({r.status})" for r in runs.itertuples() if r.status != CURRENT]


def evaluations(config: dict, metrics: dict) -> list[tuple[dict, dict]]:
    """Return (config, scores) for each test transform a run was scored with: its own, and a normalizing run's
    other one (config's `mismatch` set to it), so that each becomes a row of its own."""
    other = metrics.get("other_eval")
    return [(config, metrics)] + ([({**config, "mismatch": other["mismatch"]}, other)] if other else [])


def _load(p: Path, used_by: str) -> tuple[dict, dict]:
    if not (p / "metrics.json").exists():
        raise ReportError(f"run {p} used by {used_by} is no longer in the run store; rerun the report")
    return json.loads((p / "config.json").read_text()), json.loads((p / "metrics.json").read_text())


def experiment_rows(executed, pages: list[dict], root=None) -> list[dict]:
    """Return one row per experiment the notebooks used (its runs over seeds), two for a normalizing one (with
    and without Normalize at test time): the report's figure, the full-scale reference, and this build."""
    from ..results import is_comparable
    groups, seen = {}, set()
    for e, page in zip(executed, pages):
        for run_path in e.runs:
            if run_path in seen:
                continue
            seen.add(run_path)
            p = Path(run_path)
            config, metrics = _load(p, e.source.name)
            for conf, scores in evaluations(config, metrics):
                g = groups.setdefault((experiment_key(conf), bool(conf.get("mismatch"))), {
                    "config": conf, "notebook": page["title"], "href": page["href"], "train_images":
                    metrics.get("train_images"), "source": metrics.get("data_source"),
                    "runs": [], "seeds": [], "final": [], "best": []})
                g["runs"].append(p.name)
                g["seeds"].append(conf.get("seed"))
                g["final"].append(float(scores["final_test_acc"]))
                g["best"].append(float(scores["best_test_acc"]))
    rows = []
    for g in groups.values():
        conf, measured = g["config"], spread(g["final"])
        figure = report_figure(conf)
        comparable = figure is not None and is_comparable(config_of(conf))
        rows.append({"experiment": experiment_name(conf), "runs": g["runs"], "notebook": g["notebook"],
                     "href": g["href"], "epochs": conf["epochs"], "train_images": g["train_images"],
                     "source": g["source"], "report": figure[1] if figure else None,
                     "reference": reference_cell(conf, root=root), "build": measured, "measured": measured.mean,
                     "best": spread(g["best"]).mean, "seeds": g["seeds"], "config": conf,
                     "difference": measured.mean - figure[0] if comparable else None})
    return rows


def format_spread(s: Spread, digits: int = 2) -> str:
    """Return 'mean ± sd', or the single value, with a % sign ('–' when empty); n is shown beside it."""
    if s.n == 0:
        return "–"
    return f"{s.mean:.{digits}f}%" if s.n == 1 else f"{s.mean:.{digits}f} ± {s.sd:.{digits}f}%"
