"""Where the project is, which commit it is at, and how to name a folder without a machine path."""

import os
import subprocess
from pathlib import Path


def project_root() -> Path:
    """Return the project folder (where pyproject.toml is), else the current folder."""
    here = Path(__file__).resolve().parents[2]
    return here if (here / "pyproject.toml").exists() else Path.cwd()


def _git(*args) -> str:
    """Return git's output for these arguments in the project folder, or "" when git fails."""
    try:
        out = subprocess.run(["git", *args], cwd=project_root(), capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def project_commit(mark_dirty: bool = False) -> str:
    """Return the project's own short commit, or "unknown" when it is not its own repository (a copy inside one)."""
    top = _git("rev-parse", "--show-toplevel")
    commit = _git("rev-parse", "--short", "HEAD") if top and Path(top).resolve() == project_root().resolve() else ""
    if mark_dirty and commit and _git("status", "--porcelain", "--untracked-files=no"):
        return f"{commit} (with uncommitted changes)"
    return commit or "unknown"


def portable_path(path) -> str | None:
    """Return a folder relative to the project when inside it (`data/x`), else its own name (`x`); None passes."""
    if path is None or path == "synthetic":
        return path
    p, base = Path(path).expanduser().resolve(), project_root().resolve()
    return os.path.relpath(p, base) if p.is_relative_to(base) else p.name
