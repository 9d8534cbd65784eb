"""Reference runs kept inside the project: report/reference/<profile>/<run>/ holds a finished run's small files.

Each run folder holds only config.json, history.csv, metrics.json and env.json (never checkpoints), and each
profile folder a README.md giving every run's command, device, commit and date. A run is "current" when its
stored run id is the one today's code computes from its stored config and data identity; otherwise it is from
an older version of the project, shown as such and never used silently.

    python -m helpers.reference write quick            # copy the run store's quick runs in
    python -m helpers.reference readme                 # render README.md's results table from them
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import pandas as pd

from ..config import FIELDS, Config, ConfigError
from ..project import project_root
from ..runs import CorruptRunError, atomic_write_bytes, is_complete, read_json, run_id, runs_root
from ..stats import Spread, spread

REFERENCE_DIR = project_root() / "report" / "reference"
RUN_FILES = ("config.json", "history.csv", "metrics.json", "env.json")  # never checkpoints
CURRENT = "current"
TABLE_START, TABLE_END = "<!-- runs-table:start -->", "<!-- runs-table:end -->"
COLUMNS = ["folder", "run_id", "recipe", "lr", "mismatch", "seed", "epochs", "train_images", "final_test_acc",
           "best_test_acc", "other_mismatch", "other_final_test_acc", "other_best_test_acc", "device", "commit",
           "date", "experiment", "status"]


class ReferenceMissingError(FileNotFoundError):
    """A profile has no reference folder."""


# ---- provenance -----------------------------------------------------------------------------

def stored_config(config: dict) -> Config:
    """Return today's Config built from a stored config.json (raise ConfigError when it no longer fits)."""
    values = {k: v for k, v in config.items() if k not in ("run_id", "data")}
    unknown = sorted(set(values) - set(FIELDS))
    missing = sorted(set(FIELDS) - set(values))
    if unknown or missing:
        raise ConfigError("; ".join(filter(None, [
            unknown and f"field(s) {', '.join(unknown)} unknown to today's Config",
            missing and f"field(s) {', '.join(missing)} missing"])))
    if isinstance(values.get("snapshot_epochs"), list):
        values["snapshot_epochs"] = tuple(values["snapshot_epochs"])
    return Config(**values)


def current_run_id(config: dict) -> str:
    """Return the run id today's code gives a stored config.json (raise ConfigError when it no longer fits)."""
    if not isinstance(config.get("data"), dict):
        raise ConfigError("no data identity ('data') in config.json")
    return run_id(stored_config(config).identity(), config["data"])


def provenance(config: dict) -> str:
    """Return "current" when the stored run id is the one today's Config gives, else "older version: <why>"."""
    try:
        rid = current_run_id(config)
    except ConfigError as e:
        return f"older version: {e}"
    stored = config.get("run_id")
    if stored != rid:
        return f"older version: stored run id {stored} is not today's {rid}"
    return CURRENT


def experiment_key(config: dict) -> str:
    """Return what names an experiment: the run's identity without its seed (runs differing only by seed share it)."""
    try:
        ident = stored_config(config).identity()
    except ConfigError:  # an older run: its raw fields
        ident = {k: v for k, v in config.items() if k not in ("run_id", "data", "profile", "device", "data_dir")}
    ident.pop("seed", None)
    data = {k: v for k, v in (config.get("data") or {}).items() if k != "subset_seed"}
    return run_id(ident, data)


# ---- reading a reference folder -------------------------------------------------------------

def profiles(root=None) -> list[str]:
    """Return the profiles that have a reference folder."""
    base = Path(root or REFERENCE_DIR)
    return sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")) if base.is_dir() else []


def profile_dir(profile: str, root=None) -> Path:
    """Return report/reference/<profile>; raise ReferenceMissingError naming the valid profiles when absent."""
    folder = Path(root or REFERENCE_DIR) / profile
    if not folder.is_dir():
        raise ReferenceMissingError(f"no reference runs for profile {profile!r} in {_shown(folder.parent)}; "
                                    f"valid: {' | '.join(profiles(root)) or 'none yet (make reference PROFILE=...)'}")
    return folder


def _shown(path: Path) -> str:
    """Return a folder relative to the project when it is inside it (no machine path in messages)."""
    try:
        return str(Path(path).resolve().relative_to(project_root().resolve()))
    except ValueError:
        return str(path)


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
            "date": (env.get("finished") or "")[:10] or None, "experiment": experiment_key(config),
            "status": provenance(config)}


def reference_runs(profile: str, root=None) -> pd.DataFrame:
    """Return one row per reference run of `profile`, with its provenance `status` ("current" or "older version: ...")."""
    folder = profile_dir(profile, root)
    rows = [run_row(p.parent) for p in sorted(folder.glob("*/metrics.json"))]
    return pd.DataFrame(rows, columns=COLUMNS)


def scores(runs: pd.DataFrame, mismatch: bool = False, metric: str = "final_test_acc") -> pd.Series:
    """Return each run's `metric` under the given test transform: its own, or its other evaluation's."""
    if metric not in ("final_test_acc", "best_test_acc"):
        raise ValueError(f"parameter 'metric' = {metric!r} is invalid; valid: final_test_acc | best_test_acc")
    own = runs["mismatch"].astype(bool) == bool(mismatch)
    other = runs["other_mismatch"].map(lambda v: v is not None and not pd.isna(v) and bool(v) == bool(mismatch))
    return runs[metric].where(own, runs[f"other_{metric}"].where(other)).dropna().astype(float)


def reference_spread(profile: str, *, recipe: str, lr: float = 0.1, mismatch: bool = False,
                     metric: str = "final_test_acc", include_older: bool = False, root=None) -> Spread:
    """Return the Spread over seeds of one reference experiment (recipe, lr, test with or without Normalize).

    A normalizing run also counts, through its other evaluation, for the other `mismatch` value. Runs from an
    older version are left out unless include_older=True. Several experiments matching (e.g. other epochs) is
    an error, so that runs of different experiments are never pooled.
    """
    runs = reference_runs(profile, root)
    if not include_older:
        runs = runs[runs["status"] == CURRENT]
    runs = runs[(runs["recipe"] == recipe) & (runs["lr"].astype(float) == float(lr))]
    picked = scores(runs, mismatch, metric)
    runs = runs.loc[picked.index]
    if runs["experiment"].nunique() > 1:
        raise ValueError(f"reference {profile!r}: recipe={recipe!r}, lr={lr} matches several experiments "
                         f"(folders {', '.join(runs['folder'])}); keep one per experiment in {_shown(profile_dir(profile, root))}")
    return spread(picked)
