"""`python -m helpers.tools.reference write|readme|show`: keep report/reference/, README.md's results table and the docs
pages rendered from them (docs/results.md, docs/course-report.md) up to date."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from helpers.core.config import ConfigError
from helpers.core.project import project_root
from helpers.core.runs import records
from helpers.tools.reference import ReferenceMissingError, profile_dir, shown, write_reference


def main(argv=None) -> int:
    """Run the command line; return the exit code."""
    ap = argparse.ArgumentParser(prog="python -m helpers.tools.reference", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    wr = sub.add_parser("write", help="write report/reference/<profile>/ from the run store's finished runs")
    wr.add_argument("profile", help="smoke | quick | full")
    wr.add_argument("--runs", help="run store folder (default: $RUNS_DIR, else runs/)")
    wr.add_argument("--add", action="store_true", help="keep the runs already in the folder")
    rd = sub.add_parser("readme", help="render README.md's results table, docs/results.md's tables and "
                                       "docs/course-report.md's figures from report/reference/")
    rd.add_argument("--readme", default=str(project_root() / "README.md"), help="the README to update")
    rd.add_argument("--results", default=str(project_root() / "docs" / "results.md"),
                    help="the page of per-profile reference tables to update")
    rd.add_argument("--course", default=str(project_root() / "docs" / "course-report.md"),
                    help="the page of the course report's claims to update")
    sh = sub.add_parser("show", help="list a profile's reference runs: experiment, seed, scores, device, commit")
    sh.add_argument("profile")
    for p in (wr, rd, sh):
        p.add_argument("--root", help="reference folder (default report/reference)")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "write":
            folder = write_reference(args.profile, args.runs, root=args.root, add=args.add)
            print(f"wrote {shown(folder)}/ ({sum(1 for p in folder.iterdir() if p.is_dir())} runs)")
        elif args.cmd == "readme":
            from helpers.tools.report import course, readme  # the tables need the report's figures: a top-level job
            for page, what, update in (
                    (args.readme, "results table", lambda p: readme.update_readme(p, root=args.root)),
                    (args.results, "reference tables", lambda p: readme.update_block(
                        p, readme.DETAIL_START, readme.DETAIL_END, readme.detail_block(args.root), "reference tables")),
                    (args.course, "rendered figures", lambda p: course.update_page(p, root=args.root))):
                print(f"{shown(page)}: {what} {'updated' if update(Path(page)) else 'already up to date'}")
        else:
            print(records(profile_dir(args.profile, args.root)).to_string(index=False))
    except (ReferenceMissingError, ConfigError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
