"""The notebooks of the report: executed with papermill (reused while nothing they depend on changed), the runs each
one used (the run ids its outputs show), and the HTML pages a reader gets (code hidden, and a version with code)."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

from helpers.core.project import project_root
from helpers.core.runs import LOCK_WAIT_ENV, RECORD, is_complete, runs_root
from helpers.core.sweep import LOCK_WAIT_S

IMAGE_TYPES = ("image/png", "image/jpeg", "image/svg+xml")
TEMPLATES = project_root() / "report" / "templates"
RUN_ID = re.compile(r"\b[0-9a-f]{12}\b")  # how a runs table, a run note or a Run's repr names a run
PROGRESS_RESIDUE = re.compile(r"\d+%\|.*\||\d+it/s|\bit/s\]")


class ReportError(RuntimeError):
    """The report cannot be built: a bad parameter, or a notebook that failed."""


@dataclass
class Executed:
    """One executed notebook: where it is, its parameters, the runs it used, and how it was made."""
    source: Path
    path: Path
    params: dict
    runs: list = field(default_factory=list)  # run folders, in the order the outputs first show them
    seconds: float = 0.0
    reused: bool = False


def input_key(source: Path, params: dict, data: str) -> str:
    """Return a hash of what decides an executed notebook: the notebook, its parameters, the data and helpers."""
    parts = [source.read_bytes(), json.dumps({"params": params, "data": data, "runs": str(runs_root())},
                                             sort_keys=True, default=str).encode()]
    helpers_dir = project_root() / "helpers"
    parts += [str(p.relative_to(helpers_dir)).encode() + p.read_bytes() for p in sorted(helpers_dir.rglob("*.py"))
              if p.relative_to(helpers_dir).parts[0] != "tools"]  # the notebooks never import the tools
    return hashlib.sha256(b"\0".join(parts)).hexdigest()


def used_runs(notebook: Path) -> list[str]:
    """Return the folders of the finished runs in the run store whose ids the notebook's outputs show, in order."""
    import nbformat
    outputs = [o for c in nbformat.read(str(notebook), as_version=4).cells for o in c.get("outputs", [])]
    text = "\n".join(str(v) for o in outputs for k, v in [("text", o.get("text", "")), *o.get("data", {}).items()]
                     if not k.startswith("image/"))
    root = runs_root()
    return [str(root / rid) for rid in dict.fromkeys(RUN_ID.findall(text)) if is_complete(root / rid)]


def runs_state(runs) -> dict:
    """Return {run folder: hash of its record, or None when it is no longer a finished run}."""
    return {p: hashlib.sha256((Path(p) / RECORD).read_bytes()).hexdigest() if is_complete(p) else None for p in runs}


def execute(source: Path, dest_dir: Path, params: dict, data: str, rerun: bool = False) -> Executed:
    """Return the executed notebook: reused when nothing it depends on changed, else run with papermill."""
    import papermill as pm
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest, record_path = dest_dir / source.name, dest_dir / f"{source.stem}.json"
    key = input_key(source, params, data)
    record = json.loads(record_path.read_text()) if not rerun and record_path.exists() and dest.exists() else {}
    if record.get("input_key") == key and runs_state(record["runs"]) == record["runs_state"]:
        return Executed(source, dest, params, record["runs"], record["seconds"], reused=True)
    record_path.unlink(missing_ok=True)
    # A run another process trains is waited for inside the kernel, on the run's own lock, then loaded or resumed;
    # figures reach the notebook as outputs whatever backend the caller chose; profile="auto" reads $PROFILE.
    env = {LOCK_WAIT_ENV: os.environ.get(LOCK_WAIT_ENV) or str(LOCK_WAIT_S),
           "MPLBACKEND": "module://matplotlib_inline.backend_inline", **({"PROFILE": params["profile"]}
                                                                          if "profile" in params else {})}
    start = time.perf_counter()
    try:
        with mock.patch.dict(os.environ, env):
            pm.execute_notebook(str(source), str(dest), parameters=params, cwd=str(source.parent),
                                log_output=True, progress_bar=True)
    except pm.PapermillExecutionError as e:
        first = next((line for line in e.source.splitlines() if line.strip()), "")
        raise ReportError(f"notebook {source.name} failed in cell In [{e.exec_count}] (cell {e.cell_index} of the "
                          f"executed notebook), which starts {first!r}:\n  {e.ename}: {e.evalue}\n"
                          f"  the partial executed notebook is kept for inspection: {dest}") from None
    except Exception as e:  # a kernel that died or would not start
        raise ReportError(f"notebook {source.name} could not be executed ({type(e).__name__}: {e}); "
                          f"the partial executed notebook, if any, is at {dest}") from None
    runs, seconds = used_runs(dest), time.perf_counter() - start
    record_path.write_text(json.dumps({"input_key": key, "runs": runs, "runs_state": runs_state(runs),
                                       "seconds": seconds, "params": params, "finished": now()}, indent=2,
                                      default=str) + "\n")
    return Executed(source, dest, params, runs, seconds)


def now() -> str:
    """Return the time now, UTC, to the second."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def clean_outputs(outputs: list) -> list:
    """Return a cell's outputs without what a static page cannot show well: warnings, widgets, bar residue."""
    kept = []
    for out in outputs:
        if out.get("output_type") == "stream":  # each line as a terminal leaves it: its last carriage-return segment
            out["text"] = "\n".join(line.rsplit("\r", 1)[-1] for line in "".join(out.get("text", "")).split("\n"))
            lines = [line for line in out["text"].splitlines() if line.strip()]
            warnings_only = any("Warning" in line for line in lines) and all(
                re.search(r"Warning\b|warnings\.warn|^\s", line) for line in lines)
            if not lines or out.get("name") == "stderr" and (warnings_only or PROGRESS_RESIDUE.search(out["text"])):
                continue
        elif "application/vnd.jupyter.widget-view+json" in out.get("data", {}):
            continue  # a live widget (a progress bar): "HBox(...)" or "model not found" on a static page
        kept.append(out)
    return kept


def last_heading(markdown: str, default: str | None = None) -> str | None:
    """Return the last heading of a markdown text, else `default`."""
    heads = [line.lstrip("#").strip() for line in markdown.splitlines() if line.startswith("#")]
    return heads[-1] if heads else default


def notebook_title(nb) -> str:
    """Return the notebook's first markdown heading (its title), else its name."""
    return next((line.lstrip("#").strip() for c in nb.cells if c.cell_type == "markdown"
                 for line in c.source.splitlines() if line.startswith("#")), nb.metadata.get("title", "notebook"))


def reader_notebook(path: Path):
    """Return an executed notebook as a reader gets it: outputs cleaned, images with alt texts, no widget state."""
    import nbformat
    nb = nbformat.read(str(path), as_version=4)
    nb.metadata.pop("widgets", None)
    heading = notebook_title(nb)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            heading = last_heading(cell.source, heading)
        elif cell.cell_type == "code":
            cell.outputs = clean_outputs(cell.outputs)
            for out in cell.outputs:
                if any(m in out.get("data", {}) for m in IMAGE_TYPES):
                    out.setdefault("metadata", {}).setdefault("alt", cell.metadata.get("report_caption")
                                                              or f"Figure: {heading}")
    return nb


def export_pages(executed: list[Executed], out: Path) -> list[dict]:
    """Write <out>/NN.html (code hidden) and <out>/code/NN.html (code shown) per notebook; return page info."""
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import TagRemovePreprocessor
    css = (TEMPLATES / "report.css").read_text()
    notebooks = [reader_notebook(e.path) for e in executed]
    pages = [{"title": notebook_title(nb), "href": f"{e.source.stem}.html", "code_href": f"code/{e.source.stem}.html",
              "ipynb_href": f"executed/{e.path.name}", "folder": str(e.source.parent)}  # markdown images: from here
             for e, nb in zip(executed, notebooks)]
    (out / "code").mkdir(parents=True, exist_ok=True)
    for with_code, up in ((False, ""), (True, "../")):
        exporter = HTMLExporter(template_name="reader", extra_template_basedirs=[str(TEMPLATES)],
                                exclude_input=not with_code, exclude_input_prompt=not with_code,
                                exclude_output_prompt=True, embed_images=True)
        exporter.register_preprocessor(TagRemovePreprocessor(
            remove_cell_tags={"remove-cell"}, remove_input_tags={"remove-input"},
            remove_all_outputs_tags={"remove-output"}, enabled=True), enabled=True)
        for i, (page, nb) in enumerate(zip(pages, notebooks)):
            nav = {"css": css, "with_code": with_code, "title": page["title"], "ipynb": f"{up}{page['ipynb_href']}",
                   "index": f"{up}index.html", "other": f"../{page['href']}" if with_code else page["code_href"],
                   "has_math": any(c.cell_type == "markdown" and re.search(r"\$[^$\n]+\$|\\\(|\\\[", c.source)
                                   for c in nb.cells),
                   "prev": pages[i - 1] if i else None, "next": pages[i + 1] if i + 1 < len(pages) else None}
            body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": page["title"],
                                                                              "path": page["folder"]}, "report": nav})
            (out / (page["code_href"] if with_code else page["href"])).write_text(body, encoding="utf-8")
    return pages
