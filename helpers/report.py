"""`make report`: check the data, execute the numbered notebooks with papermill, export them to HTML,
and write a landing page (report/index.html) that summarises the study.

    python -m helpers.report --profile quick --set epochs=5 --params-file my.yaml --out report/

Each notebook gets only the parameters its `parameters` cell declares; a parameter no notebook
declares is an error. Executed notebooks are kept in <out>/executed/ and reused while the notebook,
its parameters, the helpers code and the runs it used are unchanged (--rerun executes them again).
"""
from __future__ import annotations

import argparse
import base64
import datetime as _dt
import hashlib
import json
import logging
import os
import platform
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .config import FIELDS, ConfigError, make_config, resolve_profile
from .data import DataError, folder_fingerprint, load_official, project_root, resolve_source
from .project import portable_path, project_commit
from .runs import runs_root

NOTEBOOK_NAME = re.compile(r"^\d\d_[^/]*\.ipynb$")  # 01_baseline.ipynb, ...: the study, in order
FIGURE_TAG = "report-figure"      # a cell whose first image goes onto the landing page
REMOVE_CELL_TAG = "remove-cell"   # the cell is left out of the HTML pages
REMOVE_INPUT_TAG = "remove-input"  # the cell's code is left out, even of the code version
REMOVE_OUTPUT_TAG = "remove-output"
IMAGE_TYPES = ("image/png", "image/jpeg", "image/svg+xml")
TEMPLATES = project_root() / "report" / "templates"

# Short names for the summary table; the report's figures themselves come from helpers.results.
RECIPE_LABELS = {"none": "no augmentation", "flip_rotate": "random flip + rotation", "crop": "random crop",
                 "crop_flip": "random crop + flip", "normalize": "normalization"}
PROTOCOL_EXTRAS = dict(stem="imagenet", schedule="step", label_smoothing=0.0, nesterov=False)

log = logging.getLogger("helpers.report")


class ReportError(RuntimeError):
    """The report cannot be built: a bad parameter, or a notebook that failed."""


# ---- notebooks and their parameters ---------------------------------------------------------

def find_notebooks(folder) -> list[Path]:
    """Return the numbered notebooks (NN_name.ipynb) in `folder`, in order."""
    found = sorted(p for p in Path(folder).glob("*.ipynb") if NOTEBOOK_NAME.match(p.name))
    if not found:
        raise ReportError(f"no numbered notebooks (NN_name.ipynb) in {folder}")
    return found


def declared_parameters(notebook: Path) -> dict:
    """Return {name: inferred type name} for the notebook's `parameters` cell (papermill's view)."""
    import papermill as pm
    pm_log = logging.getLogger("papermill")
    level = pm_log.level
    pm_log.setLevel(logging.WARNING)  # not "Input Notebook: ..." per inspection; keep its parse warnings
    try:
        return {name: p["inferred_type_name"] for name, p in pm.inspect_notebook(str(notebook)).items()}
    finally:
        pm_log.setLevel(level)


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
    if not isinstance(value, str):
        return value
    import yaml
    t = (type_name or "none").lower()
    if value.lower() in ("none", "null", "~") and ("optional" in t or "none" in t):
        return None
    try:
        if "tuple" in t or "list" in t:
            return [int(v) for v in value.strip("[]()").split(",") if v.strip()]
        if "bool" in t:
            parsed = yaml.safe_load(value)
            if isinstance(parsed, bool):
                return parsed
            raise ValueError
        if "int" in t:
            return int(value)
        if "float" in t:
            return float(value)
        if "str" in t:
            return value
        parsed = yaml.safe_load(value)  # undeclared type: read it as YAML, 1e-3 included
        if isinstance(parsed, str):
            try:
                return float(parsed)
            except ValueError:
                pass
        return parsed
    except ValueError:
        raise ReportError(f"parameter {name!r} = {value!r} is invalid; valid: a value of type {type_name}") from None


def plan_parameters(notebooks: list[Path], params: dict, profile: str) -> dict:
    """Return {notebook: the parameters it declares, typed}; raise ReportError on an undeclared one."""
    declared = {nb: declared_parameters(nb) for nb in notebooks}
    known = sorted({name for d in declared.values() for name in d})
    unknown = sorted(set(params) - set(known) - {"profile"})
    if unknown:
        raise ReportError(f"parameter(s) {', '.join(map(repr, unknown))} declared by no notebook; "
                          f"valid: {', '.join(known) or 'none'}")
    plan = {}
    for nb, d in declared.items():
        given = {**params, "profile": profile}
        plan[nb] = {k: coerce(k, v, d[k]) for k, v in given.items() if k in d}
    return plan


def check_config(plan: dict, profile: str):
    """Raise ConfigError now, before any work, if the training parameters are invalid together."""
    merged = {}
    for values in plan.values():
        merged.update({k: v for k, v in values.items() if k in FIELDS and k != "profile"})
    if merged.get("mismatch") and "recipe" not in merged:
        merged["recipe"] = "normalize"  # mismatch is valid only with a normalizing recipe, which its notebook picks
    make_config(profile=profile, **merged)


def check_data(profile: str, data_dir=None) -> str:
    """Return a description of the data the notebooks will train on; raise DataError at once if there is none."""
    if data_dir == "synthetic" or (data_dir is None and profile == "smoke"):
        return "synthetic stand-in (smoke profile)"
    kind, path = resolve_source(data_dir)  # raises DataError for a folder that does not exist
    if kind == "folder":
        return f"image folder {portable_path(path)} (fingerprint {folder_fingerprint(path)[:12]})"
    load_official(path, download=True)  # downloads now, or raises DataError naming the three ways
    return f"official CIFAR-10 files in {portable_path(path)}"


# ---- execution, with reuse of executed notebooks --------------------------------------------

@dataclass
class Executed:
    """One executed notebook: where it is, its parameters, the runs it used, and how it was made."""
    source: Path
    path: Path
    params: dict
    runs: list = field(default_factory=list)  # run folders, in first-use order
    seconds: float = 0.0
    reused: bool = False

    @property
    def stem(self) -> str:
        return self.source.stem


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def input_key(source: Path, params: dict, data: str) -> str:
    """Return a hash of what decides an executed notebook: the notebook, its parameters, the data and helpers."""
    parts = [source.read_bytes(), json.dumps({"params": params, "data": data, "runs": str(runs_root())},
                                             sort_keys=True, default=str).encode()]
    helpers_dir = project_root() / "helpers"
    parts += [str(p.relative_to(helpers_dir)).encode() + p.read_bytes() for p in sorted(helpers_dir.rglob("*.py"))
              if not p.relative_to(helpers_dir).parts[0].startswith("report")]  # the notebooks never import it
    return _sha(b"\0".join(parts))


def runs_state(run_paths) -> dict:
    """Return {run folder: hash of its metrics.json, or None when it is gone}."""
    out = {}
    for p in run_paths:
        m = Path(p) / "metrics.json"
        out[str(p)] = _sha(m.read_bytes()) if m.exists() else None
    return out


def read_runs_log(path: Path) -> list[str]:
    """Return the distinct run folders named in a RUNS_USED_LOG file, in first-use order."""
    if not path.exists():
        return []
    return list(dict.fromkeys(line.strip() for line in path.read_text().splitlines() if line.strip()))


def execute(source: Path, dest_dir: Path, params: dict, data: str, rerun: bool = False) -> Executed:
    """Return the executed notebook: reused when nothing it depends on changed, else run with papermill."""
    import papermill as pm
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest, record_path, runs_log = (dest_dir / source.name, dest_dir / f"{source.stem}.json",
                                   dest_dir / f"{source.stem}.runs")
    key = input_key(source, params, data)
    if not rerun and record_path.exists() and dest.exists():
        record = json.loads(record_path.read_text())
        if record.get("input_key") == key and runs_state(record["runs"]) == record["runs_state"]:
            return Executed(source, dest, params, record["runs"], record["seconds"], reused=True)
    record_path.unlink(missing_ok=True)
    runs_log.unlink(missing_ok=True)
    saved = {k: os.environ.get(k) for k in ("RUNS_USED_LOG", "PROFILE", "MPLBACKEND")}
    os.environ["RUNS_USED_LOG"] = str(runs_log)
    # Figures must reach the notebook as outputs, whatever backend the caller chose (tests use Agg).
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    if "profile" in params:
        os.environ["PROFILE"] = params["profile"]  # notebooks left at profile="auto" read it
    start = time.perf_counter()
    try:
        while True:
            try:
                pm.execute_notebook(str(source), str(dest), parameters=params, cwd=str(source.parent),
                                    log_output=True, progress_bar=True)
                break
            except pm.PapermillExecutionError as e:
                if not wait_for_other_trainer(e, cwd=source.parent):
                    raise
                log.info("%s: running it again, now that the run is free", source.name)
    except pm.PapermillExecutionError as e:
        first = next((line for line in e.source.splitlines() if line.strip()), "")
        raise ReportError(f"notebook {source.name} failed in cell In [{e.exec_count}] "
                          f"(cell {e.cell_index} of the executed notebook), which starts {first!r}:\n"
                          f"  {e.ename}: {e.evalue}\n"
                          f"  the partial executed notebook is kept for inspection: {dest}") from None
    except Exception as e:  # a kernel that died or would not start
        raise ReportError(f"notebook {source.name} could not be executed ({type(e).__name__}: {e}); "
                          f"the partial executed notebook, if any, is at {dest}") from None
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    seconds = time.perf_counter() - start
    runs = read_runs_log(runs_log)
    record = {"input_key": key, "runs": runs, "runs_state": runs_state(runs), "seconds": seconds,
              "params": params, "finished": _now()}
    record_path.write_text(json.dumps(record, indent=2, default=str) + "\n")
    return Executed(source, dest, params, runs, seconds)


def wait_for_other_trainer(error, cwd: Path, poll_s: float = 10.0) -> bool:
    """Return True after waiting out another live process that holds a run's lock (RunLockedError);
    return False at once for any other error."""
    locked = re.match(r"(\S+) is being trained by process (\d+)", str(error.evalue))
    if error.ename != "RunLockedError" or not locked:
        return False
    folder, pid = cwd / locked.group(1), int(locked.group(2))  # a relative RUNS_DIR is the kernel's
    log.info("another process (%d) is training %s; waiting for it to finish", pid, folder)
    while (folder / "lock").exists() and _alive(pid):
        time.sleep(poll_s)
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


# ---- HTML pages -----------------------------------------------------------------------------

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


# ---- the landing page -----------------------------------------------------------------------

def _data_uri(data: dict) -> str | None:
    for mime in IMAGE_TYPES:
        if mime in data:
            payload = data[mime]
            if isinstance(payload, list):
                payload = "".join(payload)
            if mime == "image/svg+xml":
                payload = base64.b64encode(payload.encode()).decode()
            return f"data:{mime};base64,{payload.strip()}"
    return None


def key_figures(executed: list[Executed], pages: list[dict]) -> tuple[list[dict], bool]:
    """Return the landing page's figures and whether they were tagged: the first image of each cell
    tagged `report-figure`; when no cell is tagged anywhere, each notebook's last image."""
    import nbformat
    tagged, last = [], []
    for e, page in zip(executed, pages):
        nb = nbformat.read(str(e.path), as_version=4)
        heading, last_here = page["title"], None
        for cell in nb.cells:
            if cell.cell_type == "markdown":
                heading = _last_heading(cell.source) or heading
                continue
            for out in cell.get("outputs", []):
                uri = _data_uri(out.get("data", {}))
                if uri is None:
                    continue
                fig = {"src": uri, "caption": cell.metadata.get("report_caption") or heading,
                       "notebook": page["title"], "href": page["href"]}
                last_here = fig
                if FIGURE_TAG in cell.metadata.get("tags", []):
                    tagged.append(fig)
                    break
        if last_here:
            last.append(last_here)
    return (tagged, True) if tagged else (last, False)


def report_figure(config: dict) -> tuple[float, str] | None:
    """Return (accuracy, as the report writes it) when the run is one of the report's experiments, else None.

    A run is one when it keeps the report's optimizer, batch and model (the length may be scaled by the
    profile) and uses a recipe and lr the report tried; a normalize run tested without normalization
    (mismatch) carries the same figure, since it is our reading of what the report measured.
    """
    from .results import REPORT_NORMALIZE, REPORT_PROTOCOL, REPORT_TEST_ACC
    keeps = (all(config.get(k) == REPORT_PROTOCOL[k] for k in ("momentum", "weight_decay", "gamma", "batch_size"))
             and all(config.get(k, v) == v for k, v in PROTOCOL_EXTRAS.items()))
    recipe, lr = config["recipe"], config["lr"]
    if not keeps:
        return None
    if recipe == "normalize" and lr == REPORT_NORMALIZE["fix_lr"]:
        return REPORT_NORMALIZE["fix_test_acc"], f"{REPORT_NORMALIZE['fix_test_acc']:.2f}%"
    if recipe == "normalize" and lr == REPORT_PROTOCOL["lr"]:
        return REPORT_NORMALIZE["test_acc"], f"≈{REPORT_NORMALIZE['test_acc']:.0f}%"
    if lr == REPORT_PROTOCOL["lr"] and REPORT_TEST_ACC.get(recipe) is not None:
        return REPORT_TEST_ACC[recipe], f"{REPORT_TEST_ACC[recipe]:.2f}%"
    return None


def experiment_name(config: dict) -> str:
    """Return a short name for a run: its recipe, learning rate, and whatever departs from the report."""
    from .results import REPORT_PROTOCOL
    parts = [RECIPE_LABELS.get(config["recipe"], config["recipe"]), f"lr {config['lr']:g}"]
    if config.get("mismatch"):
        parts.append("tested without normalization")
    parts += [f"{k} {config.get(k)}" for k, v in PROTOCOL_EXTRAS.items() if config.get(k, v) != v]
    parts += [f"{k} {config.get(k)}" for k in ("momentum", "weight_decay", "gamma", "batch_size")
              if config.get(k) != REPORT_PROTOCOL[k]]
    return ", ".join(parts)


def _config_of(config: dict):
    from .config import Config
    values = {k: config[k] for k in FIELDS if k in config}
    values["snapshot_epochs"] = tuple(values.get("snapshot_epochs") or ())
    return Config(**values)


def experiment_rows(executed: list[Executed], pages: list[dict]) -> list[dict]:
    """Return one row per run the notebooks used (two for a normalizing run: with and without Normalize at
    test time): the report's figure (if any) against the measured one."""
    from .results import is_comparable
    rows, seen = [], set()
    for e, page in zip(executed, pages):
        for run_path in e.runs:
            if run_path in seen:
                continue
            seen.add(run_path)
            p = Path(run_path)
            if not (p / "metrics.json").exists():
                raise ReportError(f"run {p} used by {e.source.name} is no longer in the run store; rerun the report")
            config = json.loads((p / "config.json").read_text())
            metrics = json.loads((p / "metrics.json").read_text())
            # A normalizing run is scored both with and without Normalize at test time: one row each.
            scored = [(config, metrics)]
            if "other_eval" in metrics:
                scored.append(({**config, "mismatch": metrics["other_eval"]["mismatch"]}, metrics["other_eval"]))
            for conf, scores in scored:
                figure = report_figure(conf)
                comparable = figure is not None and is_comparable(_config_of(conf))
                final = float(scores["final_test_acc"])
                rows.append({"experiment": experiment_name(conf), "run": p.name, "notebook": page["title"],
                             "href": page["href"], "epochs": conf["epochs"],
                             "train_images": metrics.get("train_images"), "source": metrics.get("data_source"),
                             "report": figure[1] if figure else None, "measured": final,
                             "best": float(scores["best_test_acc"]),
                             "difference": final - figure[0] if comparable else None})
    return rows


def environment(executed: list[Executed]) -> dict:
    """Return date, devices, versions and git commit for the landing page."""
    import nbconvert
    import papermill
    import torch
    import torchvision
    devices = set()
    for e in executed:
        for run_path in e.runs:
            env_file = Path(run_path) / "env.json"
            if env_file.exists():
                env = json.loads(env_file.read_text())
                devices.add(f"{env.get('device')} ({env.get('device_name')})")
    here = (f"cuda ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available()
            else f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)")
    return {"date": _now().replace("T", " "), "device": here, "train_devices": sorted(devices),
            "versions": {"python": platform.python_version(), "torch": torch.__version__,
                         "torchvision": torchvision.__version__, "papermill": papermill.__version__,
                         "nbconvert": nbconvert.__version__},
            "commit": project_commit(mark_dirty=True)}


def write_landing(out: Path, profile: str, params: dict, data: str, executed: list[Executed],
                  pages: list[dict]) -> Path:
    """Render report/templates/landing.html.j2 into <out>/index.html; return its path."""
    import jinja2
    figures, tagged = key_figures(executed, pages)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True)
    html = env.get_template("landing.html.j2").render(
        css=(TEMPLATES / "report.css").read_text(), profile=profile, comparable=profile == "full",
        params={k: v for k, v in params.items() if k != "profile"}, data=data,
        rows=experiment_rows(executed, pages), figures=figures, figures_tagged=tagged,
        notebooks=[p | {"seconds": e.seconds, "reused": e.reused} for e, p in zip(executed, pages)],
        env=environment(executed), tag=FIGURE_TAG)
    index = out / "index.html"
    index.write_text(html, encoding="utf-8")
    return index


# ---- the pipeline ---------------------------------------------------------------------------

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
        e = execute(nb, out / "executed", plan[nb], data, rerun=rerun)
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
