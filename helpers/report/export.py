"""Exporting executed notebooks to HTML pages for a reader: code hidden (and a version with code), warnings,
widgets and progress-bar residue removed, images embedded."""
from __future__ import annotations

import re
from pathlib import Path

from ..project import project_root
from .execution import Executed

REMOVE_CELL_TAG = "remove-cell"   # the cell is left out of the HTML pages
REMOVE_INPUT_TAG = "remove-input"  # the cell's code is left out, even of the code version
REMOVE_OUTPUT_TAG = "remove-output"
IMAGE_TYPES = ("image/png", "image/jpeg", "image/svg+xml")
TEMPLATES = project_root() / "report" / "templates"


_PROGRESS_RESIDUE = re.compile(r"\d+%\|.*\||\d+it/s|\bit/s\]")


def clean_stream(text: str) -> str:
    """Return stream text as a terminal would leave it: each line's last carriage-return segment."""
    return "\n".join(line.rsplit("\r", 1)[-1] for line in text.split("\n"))


def _is_warning_block(text: str) -> bool:
    """Return whether stderr text is only warnings (file:line: XWarning: ... plus the echoed source line)."""
    lines = [line for line in text.splitlines() if line.strip()]
    return bool(lines) and any("Warning" in line for line in lines) and all(
        re.search(r"Warning\b|warnings\.warn|^\s", line) for line in lines)


def clean_outputs(outputs: list) -> list:
    """Return a cell's outputs without what a static page cannot show well: warnings, widgets, bar residue."""
    kept = []
    for out in outputs:
        kind = out.get("output_type")
        if kind == "stream":
            text = clean_stream("".join(out.get("text", "")))
            if out.get("name") == "stderr":
                if _is_warning_block(text) or _PROGRESS_RESIDUE.search(text) or not text.strip():
                    continue
            if not text.strip():
                continue
            out["text"] = text
        elif kind in ("display_data", "execute_result"):
            data = out.get("data", {})
            if "application/vnd.jupyter.widget-view+json" in data:
                continue  # a live widget (a progress bar): "HBox(...)" or "model not found" on a static page
        kept.append(out)
    return kept


def _cleanup_preprocessor():
    from nbconvert.preprocessors import Preprocessor

    class ReaderCleanup(Preprocessor):
        """Drop warnings, widget views and progress-bar residue; drop widget state so no widget script loads."""

        def preprocess(self, nb, resources):
            nb.metadata.pop("widgets", None)
            self.heading = notebook_title(nb)
            return super().preprocess(nb, resources)

        def preprocess_cell(self, cell, resources, index):
            if cell.cell_type == "markdown":
                self.heading = _last_heading(cell.source) or self.heading
            elif cell.cell_type == "code":
                cell.outputs = clean_outputs(cell.outputs)
                for out in cell.outputs:  # alt text for the template: the cell's caption or section heading
                    if any(m in out.get("data", {}) for m in IMAGE_TYPES):
                        out.setdefault("metadata", {}).setdefault(
                            "alt", cell.metadata.get("report_caption") or f"Figure: {self.heading}")
            return cell, resources

    return ReaderCleanup()


def make_exporter(with_code: bool):
    """Return nbconvert's HTML exporter with the reader template, cleanup and tag preprocessors."""
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import TagRemovePreprocessor
    exporter = HTMLExporter(template_name="reader", extra_template_basedirs=[str(TEMPLATES)],
                            exclude_input=not with_code, exclude_input_prompt=not with_code,
                            exclude_output_prompt=True, embed_images=True)
    exporter.register_preprocessor(_cleanup_preprocessor(), enabled=True)
    exporter.register_preprocessor(TagRemovePreprocessor(
        remove_cell_tags={REMOVE_CELL_TAG}, remove_input_tags={REMOVE_INPUT_TAG},
        remove_all_outputs_tags={REMOVE_OUTPUT_TAG}, enabled=True), enabled=True)
    return exporter


def _last_heading(markdown: str) -> str | None:
    heads = [line.lstrip("#").strip() for line in markdown.splitlines() if line.startswith("#")]
    return heads[-1] if heads else None


def notebook_title(nb) -> str:
    """Return the notebook's first markdown heading (its title), else its name."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return nb.metadata.get("title", "notebook")


def _has_math(nb) -> bool:
    return any(cell.cell_type == "markdown" and re.search(r"\$[^$\n]+\$|\\\(|\\\[", cell.source)
               for cell in nb.cells)


def export_pages(executed: list[Executed], out: Path) -> list[dict]:
    """Write <out>/NN.html (code hidden) and <out>/code/NN.html (code shown) per notebook; return page info."""
    import nbformat
    css = (TEMPLATES / "report.css").read_text()
    notebooks = [nbformat.read(str(e.path), as_version=4) for e in executed]
    pages = [{"stem": e.stem, "title": notebook_title(nb), "href": f"{e.stem}.html",
              "code_href": f"code/{e.stem}.html", "ipynb_href": f"executed/{e.path.name}",
              "folder": str(e.source.parent)}  # markdown images are found (and embedded) from here
             for e, nb in zip(executed, notebooks)]
    (out / "code").mkdir(parents=True, exist_ok=True)
    for with_code in (False, True):
        exporter = make_exporter(with_code)
        up = "../" if with_code else ""
        for i, (page, nb) in enumerate(zip(pages, notebooks)):
            nav = {"css": css, "with_code": with_code, "title": page["title"], "index": f"{up}index.html",
                   "other": (f"../{page['href']}" if with_code else page["code_href"]),
                   "ipynb": f"{up}{page['ipynb_href']}", "has_math": _has_math(nb),
                   "prev": pages[i - 1] | {"link": f"{pages[i - 1]['stem']}.html"} if i else None,
                   "next": pages[i + 1] | {"link": f"{pages[i + 1]['stem']}.html"} if i + 1 < len(pages) else None}
            resources = {"metadata": {"name": page["title"], "path": page["folder"]}, "report": nav}
            body, _ = exporter.from_notebook_node(nb, resources=resources)
            (out / (page["code_href"] if with_code else page["href"])).write_text(body, encoding="utf-8")
    return pages

