"""The GPU trip on the CPU: which wheels it packs, the dry run fetches nothing, packing checks the size, the
output folder holds the report, the summary and the runs' small files (no checkpoints), and a phase is
stopped at its deadline. Nothing here downloads."""
import io
import json
import os
import sys
import tarfile
import time

import pandas as pd
import pytest

import helpers as h
from helpers import gpu_trip
from helpers.gpu_trip import IMAGE_PACKAGES, TripError


@pytest.fixture
def archive(tmp_path, monkeypatch):
    """A small stand-in for cifar10-jpeg.tar.xz, named by $CIFAR10_ARCHIVE."""
    src = tmp_path / "src" / "cifar10-jpeg" / "train" / "cat"
    src.mkdir(parents=True)
    (src / "0.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    path = tmp_path / "cifar10-jpeg.tar.xz"
    with tarfile.open(path, "w:xz") as tar:
        tar.add(tmp_path / "src" / "cifar10-jpeg", arcname="cifar10-jpeg")
    monkeypatch.setenv("CIFAR10_ARCHIVE", str(path))
    return path


def _no_download(packages, dest):
    raise AssertionError("the dry run downloaded")


def test_wheels_are_exactly_what_the_gpu_image_lacks():
    needed = dict(gpu_trip.needed_packages())
    for name in ("papermill", "nbconvert", "nbclient", "ipykernel", "ipython", "grad-cam", "ttach", "pyzmq", "ipywidgets"):
        assert name in needed, sorted(needed)  # the notebook tooling, and its compiled needs
    assert not set(needed) & IMAGE_PACKAGES  # torch, numpy, jinja2, pyyaml, ... are there already
    assert "opencv-python" not in needed  # grad-cam's cv2 is the image's opencv-python-headless
    assert "jupyterlab" not in needed and "pytest" not in needed and "nbval" not in needed
    assert all(version for version in needed.values())  # pinned to the tested environment's versions


def test_closure_follows_extras_and_stops_at_the_image():
    needed = dict(gpu_trip.needed_packages(["nbconvert"], image={"jinja2", "markupsafe", "packaging", "pygments"}))
    assert "tinycss2" in needed  # nbconvert needs bleach[css]: the extra's requirement is followed
    assert "jinja2" not in needed and "markupsafe" not in needed


def test_dry_run_lists_and_sizes_and_fetches_nothing(archive, tmp_path, monkeypatch, capsys):
    dest = tmp_path / ".device"
    monkeypatch.setattr(gpu_trip, "download_wheels", _no_download)
    plan = gpu_trip.pack(dest, seeds=3, dry_run=True, download=_no_download)
    out = capsys.readouterr().out
    assert not dest.exists()
    assert f"data archive: {archive} ({archive.stat().st_size / 2**20:.1f} MiB)" in out
    assert "papermill==" in out and "dry run: nothing fetched" in out
    call = json.loads(out.strip().splitlines()[-1])
    assert call == {"command": "python3 helpers/gpu_trip.py run --seeds 3", "carry": [".device"], "timeout_s": 600}
    assert plan["runs"] == len(gpu_trip.study_configs("full", 3)) and plan["eager_gpu_s"] > 0


def test_pack_copies_archive_and_wheels_and_checks_the_size(archive, tmp_path, monkeypatch, capsys):
    def fake_download(packages, dest):
        for name, version in packages:
            (dest / f"{name.replace('-', '_')}-{version}-py3-none-any.whl").write_bytes(b"w" * 1000)
    dest = tmp_path / ".device"
    (dest / "wheels").mkdir(parents=True)
    (dest / "wheels" / "papermill-0.1-py3-none-any.whl").write_bytes(b"old")  # a stale version is removed
    plan = gpu_trip.pack(dest, download=fake_download)
    assert (dest / archive.name).read_bytes() == archive.read_bytes()
    wheels = sorted(p.name for p in (dest / "wheels").iterdir())
    assert len(wheels) == len(plan["packages"]) and "papermill-0.1-py3-none-any.whl" not in wheels
    manifest = json.loads((dest / "manifest.json").read_text())
    assert manifest["carried_bytes"] == archive.stat().st_size + 1000 * len(wheels)
    assert "MiB of 64" in capsys.readouterr().out
    monkeypatch.setattr(gpu_trip, "LIMIT", manifest["carried_bytes"])  # the checkout no longer fits beside it
    with pytest.raises(TripError, match=r"MiB would travel; the device takes at most"):
        gpu_trip.pack(dest, download=fake_download)


def test_missing_archive_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("CIFAR10_ARCHIVE", str(tmp_path / "nope.tar.xz"))
    with pytest.raises(TripError, match=r"no data archive at .*nope.tar.xz; set CIFAR10_ARCHIVE"):
        gpu_trip.find_archive()


def test_unpack_once_and_install_nothing_without_wheels(archive, tmp_path):
    src = tmp_path / ".device"
    src.mkdir()
    (src / archive.name).write_bytes(archive.read_bytes())
    root = gpu_trip.unpack_data(src)
    assert (root / "train" / "cat" / "0.jpg").exists()
    (root / "train" / "cat" / "0.jpg").unlink()
    assert gpu_trip.unpack_data(src) == root and not (root / "train" / "cat" / "0.jpg").exists()  # not again
    assert gpu_trip.install_wheels(src, str(tmp_path / "site")) is False


def _fake_run(root, rid, recipe):
    """A stored run's files, as the run store writes them, plus checkpoints that must not travel back."""
    d = root / rid
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps({"recipe": recipe, "mismatch": False, "stem": "imagenet", "epochs": 2,
                                               "lr": 0.1, "train_size": None}))
    pd.DataFrame({"epoch": [1, 2], "train_acc": [50.0, 60.0], "test_acc": [40.0, 55.0],
                  "seconds": [1.0, 1.0]}).to_csv(d / "history.csv", index=False)
    (d / "metrics.json").write_text(json.dumps({"final_test_acc": 55.0, "best_test_acc": 55.0}))
    (d / "env.json").write_text("{}")
    (d / "last.pt").write_bytes(b"x" * 100)
    (d / "epoch002.pt").write_bytes(b"x" * 100)


def test_output_folder_holds_report_summary_and_small_run_files(tmp_path):
    runs, report, out = tmp_path / "runs", tmp_path / "report", tmp_path / "out"
    _fake_run(runs, "aaaaaaaaaaaa", "none")
    _fake_run(runs, "bbbbbbbbbbbb", "crop")
    (runs / "cccccccccccc").mkdir()  # an unfinished run: its history travels, it is not in the summary
    (runs / "cccccccccccc" / "history.csv").write_text("epoch\n1\n")
    report.mkdir()
    (report / "index.html").write_text("<html>report</html>")
    status = {"phases": {"report": "ok"}}
    files = gpu_trip.assemble(out, report, runs, status)
    assert sorted(p.name for p in files) == ["report.tar.gz", "runs.tar.gz", "summary.txt", "trip.json"]
    with tarfile.open(out / "report.tar.gz") as tar:
        assert tar.extractfile("report/index.html").read() == b"<html>report</html>"
    with tarfile.open(out / "runs.tar.gz") as tar:
        names = set(tar.getnames())
    assert {f"runs/aaaaaaaaaaaa/{n}" for n in ("config.json", "history.csv", "metrics.json", "env.json")} <= names
    assert "runs/cccccccccccc/history.csv" in names and not any(n.endswith(".pt") for n in names)
    summary = (out / "summary.txt").read_text()
    assert summary == h.runs_summary(runs).to_string(index=False) + "\n" and "crop" in summary
    trip = json.loads((out / "trip.json").read_text())
    assert trip["finished_runs"] == 2 and trip["files"]["summary.txt"] == len(summary)


def test_a_phase_past_its_deadline_is_stopped_with_its_workers(tmp_path):
    script = ("import subprocess, time; p = subprocess.Popen(['sleep', '60']); print('worker', p.pid, flush=True); "
              "time.sleep(60)")
    log = io.StringIO()
    started = time.monotonic()
    status = gpu_trip.run_phase("pretrain", [sys.executable, "-c", script], dict(os.environ), 2, log)
    assert status == "stopped at its deadline (2 s)" and time.monotonic() - started < 30
    worker = int(log.getvalue().split("worker ")[1].split()[0])
    for _ in range(50):  # the phase's whole process group was killed, its worker too
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"worker {worker} outlived its phase")
    assert gpu_trip.run_phase("report", ["true"], {}, 0, log) == "skipped: no time left"


def test_study_trains_every_experiments_first_seed_first():
    configs = gpu_trip.study_configs("full", seeds=3)
    first = configs[:8]
    assert [c.seed for c in first] == [0] * 8 and {c.recipe for c in first} >= {"none", "crop", "normalize", "fast"}
    assert sum(c.stem == "cifar" for c in configs) == 1 and len(configs) == 7 * 3 + 1
    assert len(set(configs)) == len(configs)
    tuned = gpu_trip.study_configs("full", seeds=1, tune=True)
    assert all(c.validation > 0 and c.recipe == "fast" for c in tuned[8:]) and len(tuned) > 8
    assert gpu_trip.estimate_seconds(configs) > gpu_trip.estimate_seconds(configs[:8]) > 0
