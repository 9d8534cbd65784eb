"""Provenance of a stored run: does its run id still match what today's Config computes from its config.json?"""
from __future__ import annotations

from ..config import FIELDS, Config, ConfigError
from ..runs import run_id

CURRENT = "current"
SCALE_FIELDS = ("epochs", "step_size", "snapshot_epochs", "train_size", "test_size")  # what a profile scales


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
    """Return what names an experiment: the run's identity and data without its seed (seeds of one experiment
    share it)."""
    try:
        ident = stored_config(config).identity()
    except ConfigError:  # an older run: its raw fields
        ident = {k: v for k, v in config.items() if k not in ("run_id", "data", "profile", "device", "data_dir")}
    ident.pop("seed", None)
    data = {k: v for k, v in (config.get("data") or {}).items() if k != "subset_seed"}
    return run_id(ident, data)


def settings_key(cfg: Config, scale: bool = True) -> str | None:
    """Return a hash of what the experiment sets besides its seed and test transform (and scale, unless
    scale=False), so that one experiment can be found at another scale."""
    ident = {k: v for k, v in cfg.identity().items() if k not in ("seed", "mismatch")}
    if not scale:
        ident = {k: v for k, v in ident.items() if k not in SCALE_FIELDS}
    return run_id(ident, {})
