"""Reading report/reference/<profile>/: one row per run, and the spread of one experiment over its seeds."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..config import ConfigError, make_config
from ..project import project_root
from ..runs import read_json
from ..stats import Spread, spread
from .provenance import CURRENT, SCALE_FIELDS, experiment_key, provenance, settings_key, stored_config

REFERENCE_DIR = project_root() / "report" / "reference"
COLUMNS = ["folder", "run_id", "recipe", "lr", "mismatch", "seed", "epochs", "train_images", "final_test_acc",
           "best_test_acc", "other_mismatch", "other_final_test_acc", "other_best_test_acc", "device", "commit",
           "date", "status", "experiment", "settings"]
METRICS = ("final_test_acc", "best_test_acc")


class ReferenceMissingError(FileNotFoundError):
    """A profile has no reference folder."""


def shown(path) -> str:
    """Return a folder relative to the project when it is inside it (no machine path in messages)."""
    try:
        return str(Path(path).resolve().relative_to(project_root().resolve()))
    except ValueError:
        return str(path)


def profiles(root=None) -> list[str]:
    """Return the profiles that have a reference folder."""
    base = Path(root or REFERENCE_DIR)
    return sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")) if base.is_dir() else []


def profile_dir(profile: str, root=None) -> Path:
    """Return report/reference/<profile>; raise ReferenceMissingError naming the valid profiles when absent."""
    folder = Path(root or REFERENCE_DIR) / str(profile)
    if not folder.is_dir():
        raise ReferenceMissingError(f"no reference runs for profile {profile!r} in {shown(folder.parent)}; "
                                    f"valid: {' | '.join(profiles(root)) or 'none yet (make reference PROFILE=...)'}")
    return folder


def _settings(config: dict) -> str | None:
    try:
        return settings_key(stored_config(config))
    except ConfigError:
        return None


def run_row(folder: Path) -> dict:
    """Return one reference run's row: what it is, its scores (both evaluations), where it ran, and its status."""
    config, metrics = read_json(folder / "config.json"), read_json(folder / "metrics.json")
    env = read_json(folder / "env.json") if (folder / "env.json").exists() else {}
    other = metrics.get("other_eval") or {}
    return {"folder": folder.name, "run_id": config.get("run_id"), "recipe": config.get("recipe"),
            "lr": config.get("lr"), "mismatch": bool(config.get("mismatch", False)), "seed": config.get("seed"),
            "epochs": config.get("epochs"), "train_images": metrics.get("train_images"),
            "final_test_acc": float(metrics["final_test_acc"]), "best_test_acc": float(metrics["best_test_acc"]),
            "other_mismatch": other.get("mismatch"), "other_final_test_acc": other.get("final_test_acc"),
            "other_best_test_acc": other.get("best_test_acc"),
            "device": env.get("device_name") or env.get("device"), "commit": env.get("git_commit"),
            "date": (env.get("finished") or "")[:10] or None, "status": provenance(config),
            "experiment": experiment_key(config), "settings": _settings(config)}


def reference_runs(profile: str, root=None) -> pd.DataFrame:
    """Return one row per reference run of `profile`, with its provenance `status` ("current" or
    "older version: <why>")."""
    folder = profile_dir(profile, root)
    return pd.DataFrame([run_row(p.parent) for p in sorted(folder.glob("*/metrics.json"))], columns=COLUMNS)


def scores(runs: pd.DataFrame, mismatch: bool = False, metric: str = "final_test_acc") -> pd.Series:
    """Return each run's `metric` under the given test transform: its own evaluation, or its other one."""
    if metric not in METRICS:
        raise ValueError(f"parameter 'metric' = {metric!r} is invalid; valid: {' | '.join(METRICS)}")
    own = runs["mismatch"].astype(bool) == bool(mismatch)
    other = runs["other_mismatch"].map(lambda v: v is not None and not pd.isna(v) and bool(v) == bool(mismatch))
    return runs[metric].where(own, runs[f"other_{metric}"].where(other)).dropna().astype(float)


def reference_matches(profile: str, *, recipe: str, lr: float | None = None, mismatch: bool = False,
                      metric: str = "final_test_acc", include_older: bool = False, root=None,
                      **settings) -> pd.DataFrame:
    """Return the runs of one reference experiment with its `score` column: the profile's standard experiment
    for `recipe` at `lr` (None: the profile's lr for the recipe), changed by any other Config `settings`."""
    runs = reference_runs(profile, root)
    if not include_older:
        runs = runs[runs["status"] == CURRENT]
    params = {"lr": lr} if lr is not None else {}
    target = settings_key(make_config(profile, recipe=recipe, data_dir="synthetic", **params, **settings))
    runs = runs[runs["settings"] == target]
    picked = scores(runs, mismatch, metric)
    runs = runs.loc[picked.index].assign(score=picked)
    if runs["experiment"].nunique() > 1:  # same settings, other data: never pooled
        raise ValueError(f"reference {profile!r}: recipe={recipe!r}, lr={lr} matches runs on different data "
                         f"(folders {', '.join(runs['folder'])}); keep one data set in "
                         f"{shown(profile_dir(profile, root))}")
    return runs


def reference_spread(profile: str, *, recipe: str, lr: float | None = 0.1, mismatch: bool = False,
                     metric: str = "final_test_acc", include_older: bool = False, root=None, **settings) -> Spread:
    """Return the Spread over seeds of one reference experiment (recipe, lr, tested with or without Normalize).

    A normalizing run also counts, through its other evaluation, for the other `mismatch` value. Runs from an
    older version are left out unless include_older=True. lr=None means the profile's lr for the recipe.
    """
    return spread(reference_matches(profile, recipe=recipe, lr=lr, mismatch=mismatch, metric=metric,
                                    include_older=include_older, root=root, **settings)["score"])


def counterpart(config: dict, profile: str = "full", metric: str = "final_test_acc", root=None) -> pd.DataFrame | None:
    """Return the reference runs of `profile` that are this run's experiment at that profile's scale, or None.

    A run has a counterpart when it keeps its own profile's settings for its recipe apart from scale and lr;
    an lr that is its profile's default maps to the other profile's default (the fast recipe's differ).
    """
    try:
        cfg = stored_config({k: v for k, v in config.items() if k not in ("run_id", "data")})
        standard = make_config(cfg.profile, recipe=cfg.recipe, data_dir="synthetic")
    except ConfigError:
        return None
    skip = ("profile", "device", "data_dir", "seed", "mismatch", "lr", *SCALE_FIELDS)
    mine, theirs = cfg.to_dict(), standard.to_dict()
    settings = {k: v for k, v in mine.items() if k not in skip and v != theirs[k]}
    lr = None if cfg.lr == standard.lr else cfg.lr
    try:
        runs = reference_matches(profile, recipe=cfg.recipe, lr=lr, mismatch=cfg.mismatch, metric=metric,
                                 root=root, **settings)
    except (ReferenceMissingError, ConfigError):
        return None
    return runs if len(runs) else None

