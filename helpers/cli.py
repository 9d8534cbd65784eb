"""Command line: `python -m helpers.cli train --profile quick --recipe crop` and `... summary`."""
from __future__ import annotations

import argparse
import sys

from .config import FIELDS, ConfigError, make_config, _TYPES


def _parse_value(name: str, text: str):
    want = _TYPES[name]
    if text.lower() == "none":
        return None
    if want is bool:
        if text.lower() in ("1", "true", "yes"):
            return True
        if text.lower() in ("0", "false", "no"):
            return False
        raise ConfigError(f"parameter {name!r} = {text!r} is invalid; valid: true | false")
    if want is tuple:
        return tuple(int(v) for v in text.split(",") if v)
    try:
        return want(text)
    except ValueError:
        raise ConfigError(f"parameter {name!r} = {text!r} is invalid; valid: a value of type {want.__name__}") from None


def main(argv=None) -> int:
    """Run the command line; return the exit code."""
    ap = argparse.ArgumentParser(prog="python -m helpers.cli", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    tr = sub.add_parser("train", help="train (or load from the run store) one run and print its summary")
    for name in FIELDS:
        tr.add_argument(f"--{name.replace('_', '-')}", dest=name, metavar=_TYPES[name].__name__.upper())
    tr.add_argument("--force", action="store_true", help="discard a stored run and retrain")
    sub.add_parser("summary", help="print one line per finished run in the store")
    args = ap.parse_args(argv)
    from . import runs_summary, train_run
    if args.cmd == "summary":
        print(runs_summary().to_string(index=False))
        return 0
    from .data import DataError
    from .runs import CorruptRunError, RunLockedError
    try:
        params = {k: _parse_value(k, v) for k, v in vars(args).items() if k in FIELDS and v is not None}
        cfg = make_config(**params)
        print(f"config: {cfg}")
        run = train_run(cfg, force=args.force)
    except (ConfigError, DataError, CorruptRunError, RunLockedError) as e:
        # Expected failures get one line and exit code 2; a traceback means a bug.
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(run)
    print(f"run folder: {run.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
