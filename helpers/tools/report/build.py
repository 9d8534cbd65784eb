"""`make report`: check the parameters and the data, execute the numbered notebooks with papermill (each gets the
parameters its `parameters` cell declares; reused from <out>/executed/ while unchanged), export them to HTML and write
a landing page (report/index.html) that summarises the study (docs/html-report.md)."""
from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import sys
from pathlib import Path

from helpers.core.config import FIELDS, ConfigError, make_config, resolve_profile
from helpers.core.data import DataError, check_data
from helpers.core.project import project_root
from .landing import write_landing
from .notebooks import ReportError, execute, export_pages

log = logging.getLogger("helpers.tools.report")
NOTEBOOK_NAME = re.compile(r"^\d\d_[^/]*\.ipynb$")  # 01_baseline.ipynb, ...: the study, in order


def find_notebooks(folder) -> list[Path]:
    """Return the numbered notebooks (NN_name.ipynb) in `folder`, in order."""
    if found := sorted(p for p in Path(folder).glob("*.ipynb") if NOTEBOOK_NAME.match(p.name)):
        return found
    raise ReportError(f"no numbered notebooks (NN_name.ipynb) in {folder}")


def load_params_file(path) -> dict:
    """Return the parameters of a YAML file (a mapping of name: value)."""
    import yaml
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ReportError(f"parameter file {str(path)!r} is unreadable: {e}") from None
    if not isinstance(data, dict):
        raise ReportError(f"parameter file {str(path)!r} must hold a mapping of name: value")
    return data


def parse_sets(pairs) -> dict:
    """Return {name: text} from ['name=value', ...]; the text is typed later, per notebook."""
    out = {}
    for pair in pairs or ():
        name, sep, text = pair.partition("=")
        if not sep or not name.strip():
            raise ReportError(f"--set {pair!r} is invalid; valid: name=value")
        out[name.strip()] = text.strip()
    return out


def coerce(name: str, value, type_name: str):
    """Return a command-line value typed as the notebook declares it (YAML values pass unchanged)."""
    import yaml
    t = (type_name or "none").lower()
    if not isinstance(value, str):
        return value
    if value.lower() in ("none", "null", "~") and ("optional" in t or "none" in t):
        return None
    try:
        if "list" in t or "tuple" in t:
            return [int(v) for v in value.strip("[]()").split(",") if v.strip()]
        kind = next((k for k in (bool, int, float, str) if k.__name__ in t), None)
        parsed = kind(value) if kind in (int, float, str) else yaml.safe_load(value)  # bool or undeclared: YAML
        if kind is bool and not isinstance(parsed, bool):
            raise ValueError(value)
        with contextlib.suppress(ValueError):  # an undeclared type: a number where it reads as one (1e-3)
            return float(parsed) if kind is None and isinstance(parsed, str) else parsed
        return parsed
    except ValueError:
        raise ReportError(f"parameter {name!r} = {value!r} is invalid; valid: a value of type {type_name}") from None


def plan_parameters(notebooks: list[Path], params: dict, profile: str) -> dict:
    """Return {notebook: the parameters it declares, typed}; raise ReportError on an undeclared one."""
    import papermill as pm
    pm_log, level = logging.getLogger("papermill"), logging.getLogger("papermill").level
    pm_log.setLevel(logging.WARNING)  # not "Input Notebook: ..." per inspection; keep its parse warnings
    try:  # {notebook: {name: type name}} of each `parameters` cell, as papermill reads it
        declared = {nb: {k: p["inferred_type_name"] for k, p in pm.inspect_notebook(str(nb)).items()}
                    for nb in notebooks}
    finally:
        pm_log.setLevel(level)
    known = sorted({name for d in declared.values() for name in d})
    if unknown := sorted(set(params) - set(known) - {"profile"}):
        raise ReportError(f"parameter(s) {', '.join(map(repr, unknown))} declared by no notebook; "
                          f"valid: {', '.join(known) or 'none'}")
    given = {**params, "profile": profile}
    return {nb: {k: coerce(k, v, d[k]) for k, v in given.items() if k in d} for nb, d in declared.items()}


def anchor_data_folder(params: dict, environ=os.environ) -> dict:
    """Return params with `data_dir` made absolute, and $CIFAR10_DIR in place: the kernels run in notebooks/."""
    params = dict(params)
    if params.get("data_dir") not in (None, "synthetic") and not os.path.isabs(str(params["data_dir"])):
        params["data_dir"] = str(Path(str(params["data_dir"])).expanduser().resolve())
    if environ.get("CIFAR10_DIR") and not os.path.isabs(environ["CIFAR10_DIR"]):
        environ["CIFAR10_DIR"] = str(Path(environ["CIFAR10_DIR"]).expanduser().resolve())
    return params


def build_report(profile: str = "auto", params: dict | None = None, out="report", notebooks_dir=None,
                 rerun: bool = False) -> Path:
    """Check parameters and data, execute the notebooks, export the pages; return <out>/index.html."""
    params = anchor_data_folder(params or {})
    given = params.pop("profile", profile)
    if profile not in ("auto", given):
        raise ReportError(f"parameter 'profile' given twice: {profile!r} and {given!r}")
    profile, out = resolve_profile(given), Path(out).resolve()
    notebooks = find_notebooks(notebooks_dir or project_root() / "notebooks")
    plan = plan_parameters(notebooks, params, profile)
    training = {k: v for values in plan.values() for k, v in values.items() if k in FIELDS and k != "profile"}
    make_config(profile=profile, **training)  # a ConfigError now, before any work
    log.info("profile %s; parameters %s\nchecking the data ...", profile, params or "none beyond the profile")
    data = check_data(profile, training.get("data_dir"))
    log.info("data: %s", data)
    executed = []
    for i, nb in enumerate(notebooks, 1):
        log.info("[%d/%d] %s  %s", i, len(notebooks), nb.name, plan[nb])
        executed.append(e := execute(nb, out / "executed", plan[nb], data, rerun=rerun))
        how = "reused (unchanged; executed in {:.0f} s)" if e.reused else "done in {:.0f} s"
        log.info("[%d/%d] %s %s", i, len(notebooks), nb.name, how.format(e.seconds))
    log.info("exporting HTML")
    index = write_landing(out, profile, params, data, executed, export_pages(executed, out))
    log.info("report: %s", index)
    return index


def main(argv=None) -> int:
    """Run the command line; return the exit code."""
    ap = argparse.ArgumentParser(prog="python -m helpers.tools.report", description=__doc__)
    ap.add_argument("--profile", default="auto", help="auto | smoke | quick | full (default auto)")
    ap.add_argument("--params-file", help="YAML file of notebook parameters (name: value)")
    ap.add_argument("--set", action="append", metavar="NAME=VALUE", help="a notebook parameter; repeatable")
    ap.add_argument("--out", default=str(project_root() / "report"), help="output folder (default report/)")
    ap.add_argument("--notebooks", default=str(project_root() / "notebooks"), help="notebook folder")
    ap.add_argument("--rerun", action="store_true", help="execute every notebook again (runs are still reused)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    try:
        params = load_params_file(args.params_file) if args.params_file else {}
        build_report(args.profile, {**params, **parse_sets(args.set)}, args.out, args.notebooks, args.rerun)
    except (ReportError, ConfigError, DataError) as e:
        print(f"make report: error: {e}", file=sys.stderr)
        return 2
    return 0
