"""`make report`: check the data, execute the numbered notebooks with papermill, export them to HTML,
and write a landing page (report/index.html) that summarises the study.

    python -m helpers.report --profile quick --set epochs=5 --params-file my.yaml --out report/

Each notebook gets only the parameters its `parameters` cell declares; a parameter no notebook
declares is an error. Executed notebooks are kept in <out>/executed/ and reused while the notebook,
its parameters, the helpers code and the runs it used are unchanged (--rerun executes them again).
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ..config import ConfigError, resolve_profile
from ..data import DataError
from ..project import project_root
from . import execution
from .export import export_pages
from .landing import write_landing
from .plan import (ReportError, anchor_data_folder, check_config, check_data, find_notebooks, load_params_file,
                   parse_sets, plan_parameters)

log = logging.getLogger("helpers.report")


def build_report(profile: str = "auto", params: dict | None = None, out="report", notebooks_dir=None,
                 rerun: bool = False) -> Path:
    """Check parameters and data, execute the notebooks, export the pages; return <out>/index.html."""
    params = dict(params or {})
    if "profile" in params:
        given = params.pop("profile")
        if profile not in ("auto", given):
            raise ReportError(f"parameter 'profile' given twice: {profile!r} and {given!r}")
        profile = given
    profile = resolve_profile(profile)
    out = Path(out).resolve()
    notebooks = find_notebooks(notebooks_dir or project_root() / "notebooks")
    params = anchor_data_folder(params)
    plan = plan_parameters(notebooks, params, profile)
    check_config(plan, profile)
    data_dir = next((v["data_dir"] for v in plan.values() if v.get("data_dir") is not None), None)
    log.info("profile %s; parameters %s", profile, params or "none beyond the profile")
    log.info("checking the data ...")
    data = check_data(profile, data_dir)
    log.info("data: %s", data)
    executed = []
    for i, nb in enumerate(notebooks, 1):
        log.info("[%d/%d] %s  %s", i, len(notebooks), nb.name, plan[nb])
        e = execution.execute(nb, out / "executed", plan[nb], data, rerun=rerun)
        log.info("[%d/%d] %s %s", i, len(notebooks), nb.name,
                 f"reused (unchanged; executed in {e.seconds:.0f} s)" if e.reused else f"done in {e.seconds:.0f} s")
        executed.append(e)
    log.info("exporting HTML")
    pages = export_pages(executed, out)
    index = write_landing(out, profile, params, data, executed, pages)
    log.info("report: %s", index)
    return index


def main(argv=None) -> int:
    """Run the command line; return the exit code."""
    ap = argparse.ArgumentParser(prog="python -m helpers.report", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
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
        params.update(parse_sets(args.set))
        build_report(args.profile, params, args.out, args.notebooks, args.rerun)
    except (ReportError, ConfigError, DataError) as e:
        print(f"make report: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
