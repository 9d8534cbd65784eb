"""The conda route (environment.yml) and the pip route (pyproject.toml) install the same things."""
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _load():
    return (tomllib.loads((ROOT / "pyproject.toml").read_text()),
            yaml.safe_load((ROOT / "environment.yml").read_text()))


def test_environment_uses_conda_forge_only_and_pins_python():
    _, env = _load()
    assert env["channels"] == ["conda-forge"]
    py = [d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python")]
    assert py and re.fullmatch(r"python=3\.\d+", py[0])


def test_python_pin_is_inside_requires_python():
    proj, env = _load()
    minor = int(next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
                .split("=")[1].split(".")[1])
    lo, hi = re.findall(r"3\.(\d+)", proj["project"]["requires-python"])
    assert int(lo) <= minor < int(hi)


def test_pip_section_installs_this_package_with_every_extra_the_makefile_uses():
    proj, env = _load()
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    extras = set(proj["project"]["optional-dependencies"])
    spec = [p for p in pip if p.startswith("-e")]
    assert len(spec) == 1
    used = set(re.search(r"\[(.*)\]", spec[0]).group(1).split(","))
    make_used = set(re.search(r'pip install -e "\.\[(.*)\]"', (ROOT / "Makefile").read_text()).group(1).split(","))
    assert used == extras == make_used


def test_no_package_is_declared_on_both_routes():
    proj, env = _load()
    conda = {re.split(r"[=<>]", d)[0] for d in env["dependencies"] if isinstance(d, str)}
    pip_names = {re.split(r"[ =<>\[]", d)[0].lower() for d in proj["project"]["dependencies"]}
    for extra in proj["project"]["optional-dependencies"].values():
        pip_names |= {re.split(r"[ =<>\[]", d)[0].lower() for d in extra}
    assert conda & pip_names == set(), "declare a package on one route only (pyproject.toml)"
