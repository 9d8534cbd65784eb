"""The landing page, report/index.html: what was built and how, every experiment with the report's figure, the
full-scale reference and this build side by side, the verdicts, the key figures, and the notebooks."""
from __future__ import annotations

import base64
import os
import platform
from importlib.metadata import version
from pathlib import Path

from helpers.core.project import project_commit
from helpers.core.runs import load_run
from helpers.core.stats import Verdict, verdict_frame
from helpers.tools.reference import REFERENCE_DIR, shown
from .experiments import FULL_SCALE, experiment_rows, format_spread
from .notebooks import IMAGE_TYPES, TEMPLATES, Executed, last_heading, now

FIGURE_TAG = "report-figure"  # a cell whose first image goes onto the landing page


def data_uri(data: dict) -> str | None:
    """Return the first image of an output's data as a data: URI (None without one)."""
    mime = next((m for m in IMAGE_TYPES if m in data), None)
    if mime is None:
        return None
    payload = "".join(data[mime])
    return f"data:{mime};base64," + (base64.b64encode(payload.encode()).decode() if mime == "image/svg+xml"
                                     else payload.strip())


def key_figures(executed: list[Executed], pages: list[dict]) -> tuple[list[dict], bool]:
    """Return the first image of each cell tagged `report-figure` and True; if none is, each notebook's last, False."""
    import nbformat
    tagged, last = [], []
    for e, page in zip(executed, pages):
        heading, figures = page["title"], []
        for cell in nbformat.read(str(e.path), as_version=4).cells:
            heading = last_heading(cell.source, heading) if cell.cell_type == "markdown" else heading
            uris = [u for u in (data_uri(out.get("data", {})) for out in cell.get("outputs", [])) if u]
            figures += [{"src": u, "caption": cell.metadata.get("report_caption") or heading,
                         "notebook": page["title"], "href": page["href"]} for u in uris]
            tagged += figures[-len(uris):][:1] if uris and FIGURE_TAG in cell.metadata.get("tags", []) else []
        last += figures[-1:]
    return (tagged, True) if tagged else (last, False)


def verdicts(rows: list[dict], profile: str) -> list[Verdict]:
    """Return a Verdict per row that compares with the report: this build against its one run, by results.judge."""
    from helpers.notebook.results import judge, reference_sd
    compared = [r for r in rows if r.get("difference") is not None]
    ref = reference_sd(profile, dict.fromkeys(r["name"] for r in compared)) if compared else None
    return [Verdict(r["experiment"], "this build", "the report",
                    judge(r["build"], [r["measured"] - r["difference"]], ref)) for r in compared]


def environment(executed: list[Executed]) -> dict:
    """Return date, devices, versions and git commit for the landing page."""
    import torch
    import torchvision
    devices = {f"{env.get('device')} ({env.get('device_name')})" for env in (load_run(p).env for e in executed
                                                                              for p in e.runs)}
    here = (f"cuda ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available()
            else f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)")
    return {"date": now().replace("T", " "), "device": here, "train_devices": sorted(devices),
            "versions": {"python": platform.python_version(), "torch": torch.__version__,  # with their CUDA build
                         "torchvision": torchvision.__version__, **{n: version(n) for n in ("papermill", "nbconvert")}},
            "commit": project_commit(mark_dirty=True)}


def write_landing(out: Path, profile: str, params: dict, data: str, executed: list[Executed], pages: list) -> Path:
    """Render report/templates/landing.html.j2 into <out>/index.html; return its path."""
    import jinja2
    from helpers.notebook.results import REPORT_PROTOCOL
    figures, tagged = key_figures(executed, pages)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True)
    env.filters["spread"] = format_spread
    rows, reference = experiment_rows(executed, pages), REFERENCE_DIR / FULL_SCALE
    judged = verdicts(rows, profile)
    judged = verdict_frame(judged).to_html(index=False, border=0, classes="verdicts") if judged else ""
    html = env.get_template("landing.html.j2").render(
        css=(TEMPLATES / "report.css").read_text(), profile=profile, comparable=profile == "full", data=data,
        params={k: v for k, v in params.items() if k != "profile"}, rows=rows, verdicts=judged,
        figures=figures, figures_tagged=tagged,
        notebooks=[p | {"seconds": e.seconds, "reused": e.reused} for e, p in zip(executed, pages)],
        env=environment(executed), tag=FIGURE_TAG, protocol=REPORT_PROTOCOL,
        reference={"folder": shown(reference), "exists": reference.is_dir()})
    (out / "index.html").write_text(html, encoding="utf-8")
    return out / "index.html"
