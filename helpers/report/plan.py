"""The report's parameters: find the numbered notebooks, read what each declares, type the values given on the
command line or in a YAML file, and check the configuration and the data before any work starts."""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from ..config import FIELDS, make_config
from ..data import check_data  # noqa: F401  (re-exported: the report checks the data as a notebook does)

NOTEBOOK_NAME = re.compile(r"^\d\d_[^/]*\.ipynb$")  # 01_baseline.ipynb, ...: the study, in order


class ReportError(RuntimeError):
    """The report cannot be built: a bad parameter, or a notebook that failed."""


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


def anchor_data_folder(params: dict, environ=os.environ) -> dict:
    """Return params with a relative `data_dir` made absolute, and make a relative $CIFAR10_DIR absolute in place.

    The notebooks' kernels run in notebooks/, so a folder given relative to where the command was typed
    (`CIFAR10_DIR=data/cifar10-jpeg make report`) would otherwise name another folder there.
    """
    params = dict(params)
    if params.get("data_dir") not in (None, "synthetic") and not os.path.isabs(str(params["data_dir"])):
        params["data_dir"] = str(Path(str(params["data_dir"])).expanduser().resolve())
    env_dir = environ.get("CIFAR10_DIR")
    if env_dir and not os.path.isabs(env_dir):
        environ["CIFAR10_DIR"] = str(Path(env_dir).expanduser().resolve())
    return params
