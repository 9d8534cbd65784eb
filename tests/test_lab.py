"""`make lab`'s launcher: a busy port is named and the next free one taken, the data and the run store are found as
`make report` finds them, and this environment's kernel comes first. (The browser test: test_ui_jupyterlab.py.)"""
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.tools import lab
from helpers.core.data import HOW_TO_PROVIDE

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def listening():
    """Yield the port of a socket that listens on 127.0.0.1 (a busy port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def test_a_busy_port_is_named_and_the_next_free_one_taken(listening):
    assert not lab.port_is_free(listening)
    command, _, lines = lab.prepare(listening, ROOT / "notebooks", environ={"PROFILE": "smoke"})
    chosen = lab.choose_port(listening)
    assert chosen > listening and f"--port={chosen}" in command and "--ServerApp.port_retries=0" in command
    assert lines[0] == f"port {listening} is busy; using port {chosen} (make lab PORT=N picks another)"


def test_no_free_port_and_a_bad_port_are_errors_naming_the_parameter(listening):
    with pytest.raises(lab.ConfigError, match=rf"'port' = {listening}: ports {listening}..{listening} are all busy"):
        lab.choose_port(listening, tries=1)
    with pytest.raises(lab.ConfigError, match=r"'port' = 0 is invalid; valid: 1..65535"):
        lab.choose_port(0)


def test_the_environment_anchors_data_and_runs_and_puts_this_kernel_first(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = lab.lab_environment({"CIFAR10_DIR": "data/cifar", "RUNS_DIR": "my-runs", "JUPYTER_PATH": "/elsewhere",
                               "MPLBACKEND": "Agg"})
    assert env["CIFAR10_DIR"] == str(tmp_path / "data" / "cifar") and env["RUNS_DIR"] == str(tmp_path / "my-runs")
    first, *rest = env["JUPYTER_PATH"].split(os.pathsep)
    assert Path(first) == Path(sys.prefix) / "share" / "jupyter" and rest == ["/elsewhere"]
    assert env["MPLBACKEND"] == "module://matplotlib_inline.backend_inline"


def test_a_missing_data_folder_stops_before_jupyterlab_with_the_three_ways(tmp_path, capsys):
    missing = tmp_path / "nowhere"
    with pytest.raises(lab.DataError, match="no such folder") as e:
        lab.prepare(lab.DEFAULT_PORT, ROOT / "notebooks", environ={"PROFILE": "quick", "CIFAR10_DIR": str(missing)})
    assert HOW_TO_PROVIDE in str(e.value)
    assert lab.main(["--notebooks", str(tmp_path / "none")]) == 2
    assert "make lab: error: parameter 'notebooks'" in capsys.readouterr().err


def test_the_smoke_profile_needs_no_data_and_the_first_notebook_is_named():
    _, _, lines = lab.prepare(lab.DEFAULT_PORT, ROOT / "notebooks",
                              environ={"PROFILE": "smoke", "CIFAR10_DIR": "/no/such/folder"})
    assert "notebooks: notebooks (open 01_baseline.ipynb first)" in lines
    assert "data: synthetic stand-in (smoke profile)" in lines


def test_make_lab_runs_the_launcher_on_the_port_given():
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}  # under make test
    out = subprocess.run(["make", "--no-print-directory", "-n", "lab", "PORT=9999", "LAB_ARGS=--no-browser"],
                         cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[-1] == ".venv/bin/python -m helpers.tools.lab --port 9999 --no-browser"
