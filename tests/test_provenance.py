"""A run is identified by its data, not by where the data lies; its files name no machine path and the
project's own commit; expected CLI failures are one line."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import helpers as h
from helpers.tools import cli
from helpers.core import data as data_mod
from helpers.core.data import data_identity
from helpers.core.project import portable_path, project_root
from helpers.core.runs import run_id

ONE_PER_CLASS = {"train": 1, "test": 1}


@pytest.fixture
def tiny_folder(tmp_path, monkeypatch):
    """An ImageFolder tree with one 32x32 image per class and split (the count check is scaled to match)."""
    monkeypatch.setattr(data_mod, "PER_CLASS", ONE_PER_CLASS)
    monkeypatch.setenv("CIFAR10_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "images" / "cifar"
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for name in h.CLASSES:
            (root / split / name).mkdir(parents=True)
            Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(root / split / name / "0.png")
    return root


def _id(folder) -> str:
    cfg = h.make_config(profile="quick", data_dir=str(folder), train_size=10, test_size=10)
    return run_id(cfg.identity(), data_identity(cfg.data_dir, cfg.train_size, cfg.test_size, cfg.seed))


def test_same_images_at_two_paths_are_one_run(tiny_folder, tmp_path):
    link = tmp_path / "link"
    link.symlink_to(tiny_folder)
    moved = tmp_path / "elsewhere" / "copy"
    shutil.copytree(tiny_folder, moved)
    assert _id(tiny_folder) == _id(link) == _id(moved)
    # ... while different images are a different run
    (moved / "train" / "cat" / "0.png").write_bytes((moved / "train" / "dog" / "0.png").read_bytes() + b"x")
    assert _id(moved) != _id(tiny_folder)


def test_run_files_hold_no_absolute_path(tiny_folder, tmp_path):
    run = h.train_run(profile="smoke", data_dir=str(tiny_folder), train_size=10, test_size=10, epochs=1,
                      runs_dir=tmp_path / "runs", progress=False)
    for name in ("config.json", "record.json"):
        text = (run.path / name).read_text()
        assert str(tmp_path) not in text, name
    assert not os.path.isabs(run.config["data_dir"])
    assert run.config["data_dir"] == "cifar"  # outside the project: named by the folder's own name


def test_data_folder_is_recorded_by_name_unless_inside_the_project(tmp_path):
    """A folder beside the project is named like any other outside it: how one machine lays out its folders
    must not enter a run's files."""
    beside = project_root().parent / "data" / "cifar10-jpeg"
    assert portable_path(beside) == "cifar10-jpeg"
    assert portable_path(tmp_path / "x" / "cifar10-jpeg") == "cifar10-jpeg"
    assert portable_path(project_root() / "data" / "cifar10-jpeg") == os.path.join("data", "cifar10-jpeg")
    assert portable_path(None) is None and portable_path("synthetic") == "synthetic"


def test_commit_is_the_projects_own_or_unknown(tmp_path):
    """A copy of the project inside another repository must not report that repository's commit."""
    outer = tmp_path / "outer"
    inner = outer / "inner"
    shutil.copytree(project_root() / "helpers", inner / "helpers", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(project_root() / "pyproject.toml", inner)
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], cwd=outer, check=True)
    subprocess.run([*git, "add", "-A"], cwd=outer, check=True)
    subprocess.run([*git, "commit", "-qm", "outer"], cwd=outer, check=True)
    probe = "from helpers.core.project import project_commit; print(project_commit())"
    env = {**os.environ, "PYTHONPATH": str(inner)}
    out = subprocess.run([sys.executable, "-c", probe], cwd=inner, env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "unknown", out.stderr
    # the same copy as a repository of its own reports its own commit
    subprocess.run([*git, "init", "-q"], cwd=inner, check=True)
    subprocess.run([*git, "add", "-A"], cwd=inner, check=True)
    subprocess.run([*git, "commit", "-qm", "inner"], cwd=inner, check=True)
    own = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=inner, capture_output=True, text=True).stdout.strip()
    out = subprocess.run([sys.executable, "-c", probe], cwd=inner, env=env, capture_output=True, text=True)
    assert out.stdout.strip() == own


def test_cli_corrupt_run_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RUNS_DIR", str(tmp_path))
    args = ["train", "--profile", "smoke", "--epochs", "2", "--train-size", "200", "--test-size", "50"]
    assert cli.main(args) == 0
    run_dir = next(p for p in tmp_path.iterdir() if p.is_dir())
    (run_dir / "record.json").unlink()                      # as if interrupted ...
    last = run_dir / "last.pt"
    last.write_bytes(last.read_bytes()[:1000])              # ... while last.pt was damaged
    capsys.readouterr()
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "last.pt" in err[0], err


def test_cli_missing_data_is_one_line_and_exit_2(tmp_path, capsys):
    missing = tmp_path / "no-such-folder"
    assert cli.main(["train", "--profile", "quick", "--data-dir", str(missing)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "data_dir" in err[0] and "no such folder" in err[0], err
