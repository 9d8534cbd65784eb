"""Executing the notebooks with papermill, reusing an executed notebook while nothing it depends on changed."""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..project import project_root
from ..runs import LOCK_WAIT_ENV, runs_root
from ..sweep import LOCK_WAIT_S
from .plan import ReportError

log = logging.getLogger("helpers.report")


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
    saved = {k: os.environ.get(k) for k in ("RUNS_USED_LOG", "PROFILE", "MPLBACKEND", LOCK_WAIT_ENV)}
    os.environ["RUNS_USED_LOG"] = str(runs_log)
    # A run another process trains is waited for inside the kernel, on the run's own lock, then loaded or resumed.
    os.environ[LOCK_WAIT_ENV] = os.environ.get(LOCK_WAIT_ENV) or str(LOCK_WAIT_S)
    # Figures must reach the notebook as outputs, whatever backend the caller chose (tests use Agg).
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    if "profile" in params:
        os.environ["PROFILE"] = params["profile"]  # notebooks left at profile="auto" read it
    start = time.perf_counter()
    try:
        pm.execute_notebook(str(source), str(dest), parameters=params, cwd=str(source.parent),
                            log_output=True, progress_bar=True)
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


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")

