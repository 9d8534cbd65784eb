"""`make lab` (`python -m helpers.tools.lab [--port 8888] [--notebooks DIR] [jupyter lab options]`): JupyterLab on
notebooks/ with this environment's kernel first; a busy port is reported and the next free one taken. The kernels
inherit PROFILE, CIFAR10_DIR and RUNS_DIR, made absolute from where the command runs (they run in notebooks/)."""
from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path

from helpers.core.config import ConfigError, resolve_profile
from helpers.core.data import DataError, check_data, resolve_source
from helpers.core.project import portable_path, project_root
from .report.build import NOTEBOOK_NAME

DEFAULT_PORT = 8888


def port_is_free(port: int) -> bool:
    """Return True if a server could listen on 127.0.0.1:port now (as JupyterLab would: SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def choose_port(port: int, tries: int = 50) -> int:
    """Return `port` if it is free, else the next free one above it; raise ConfigError if none of `tries` is."""
    if not 1 <= port <= 65535:
        raise ConfigError(f"parameter 'port' = {port!r} is invalid; valid: 1..65535")
    last = min(port + tries, 65536) - 1
    if free := next((p for p in range(port, last + 1) if port_is_free(p)), None):
        return free
    raise ConfigError(f"parameter 'port' = {port!r}: ports {port}..{last} are all busy; valid: a free port (PORT=N)")


def lab_environment(environ=None) -> dict:
    """Return JupyterLab's and its kernels' environment: data and run store anchored, this Python's kernel first."""
    env = dict(os.environ if environ is None else environ)
    for name in ("CIFAR10_DIR", "RUNS_DIR"):  # relative to where the command runs, as `make report` reads them
        if env.get(name) and not os.path.isabs(env[name]):
            env[name] = str(Path(env[name]).expanduser().resolve())
    env["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"  # figures inline, whatever the shell sets
    kernels = [str(Path(sys.prefix) / "share" / "jupyter"), env.get("JUPYTER_PATH")]  # its "python3" runs this Python
    env["JUPYTER_PATH"] = os.pathsep.join(filter(None, kernels))
    return env


def prepare(port: int, notebooks, extra=(), environ=None) -> tuple[list[str], dict, list[str]]:
    """Check everything before JupyterLab starts; return (its command, at the port chosen, environment, lines)."""
    notebooks = Path(notebooks)
    if not notebooks.is_dir():
        raise ConfigError(f"parameter 'notebooks' = {str(notebooks)!r}: no such folder; valid: a folder of notebooks")
    env, chosen = lab_environment(environ), choose_port(port)
    lines = [] if chosen == port else [f"port {port} is busy; using port {chosen} (make lab PORT=N picks another)"]
    profile = env.get("PROFILE") or "auto"
    concrete = resolve_profile(profile)
    data_dir = env.get("CIFAR10_DIR") if concrete != "smoke" else None  # a missing folder: DataError, the three ways
    data = ("the official CIFAR-10 files in .cache/ (the first notebook that needs them downloads them)"
            if concrete != "smoke" and resolve_source(data_dir)[0] == "official" else check_data(concrete, data_dir))
    numbered = sorted(p.name for p in notebooks.glob("*.ipynb") if NOTEBOOK_NAME.match(p.name))
    lines += [f"notebooks: {portable_path(notebooks)}" + (f" (open {numbered[0]} first)" if numbered else ""),
              f"kernel: {sys.executable}",
              f"profile: {concrete}" + ("" if profile == concrete else f" (PROFILE={profile})")
              + "; a notebook's `profile` parameter overrides it",
              f"data: {data}"]
    as_root = ["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []  # containers often run as root
    return [sys.executable, "-m", "jupyter", "lab", f"--ServerApp.root_dir={notebooks.resolve()}", f"--port={chosen}",
            "--ServerApp.port_retries=0", *as_root, *extra], env, lines


def main(argv=None) -> int:
    """Check the port and the data, then replace this process with JupyterLab; return an exit code on error."""
    ap = argparse.ArgumentParser(prog="python -m helpers.tools.lab", description=__doc__)
    ap.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port to serve on (default {DEFAULT_PORT})")
    ap.add_argument("--notebooks", default=str(project_root() / "notebooks"), help="folder to open (notebooks/)")
    args, extra = ap.parse_known_args(argv)
    try:
        command, env, lines = prepare(args.port, args.notebooks, extra)
    except (ConfigError, DataError) as e:
        print(f"make lab: error: {e}", file=sys.stderr)
        return 2
    print("\n".join(f"make lab: {line}" for line in lines), flush=True)
    os.execve(command[0], command, env)  # does not return


if __name__ == "__main__":
    sys.exit(main())
