"""Reference runs inside the project (report/reference/<profile>/): provenance, spreads, writing, README tables."""
import json
import math
import shutil
import subprocess
from pathlib import Path

import pytest

import helpers as h
from helpers import reference as ref
from helpers.cli import _parse_value
from helpers.config import make_config
from helpers.reference import write as ref_write
from helpers.reference.__main__ import main as reference_main
from helpers.report import readme
from helpers.report.landing import reference_info
from helpers.runs import run_id

ROOT = Path(__file__).resolve().parents[1]
FULL = ROOT / "report" / "reference" / "full"


def copy_run(src: Path, dest: Path, **changes) -> Path:
    """Copy a reference run to `dest`, changing config fields (and metrics via metrics=...); keep its run id."""
    shutil.copytree(src, dest)
    metrics = changes.pop("metrics", None)
    config = json.loads((dest / "config.json").read_text())
    config.update(changes)
    (dest / "config.json").write_text(json.dumps(config))
    if metrics:
        m = json.loads((dest / "metrics.json").read_text())
        (dest / "metrics.json").write_text(json.dumps({**m, **metrics}))
    return dest


def another_seed(src: Path, dest: Path, seed: int, final: float) -> Path:
    """Copy a run as the same experiment with another seed: a current run id for that seed, another score."""
    config = json.loads((src / "config.json").read_text())
    data = {**config["data"], "subset_seed": seed}
    rid = ref.current_run_id({**config, "seed": seed, "data": data})
    return copy_run(src, dest, seed=seed, data=data, run_id=rid, metrics={"final_test_acc": final})


# ---- the committed full-scale reference -----------------------------------------------------

def test_the_committed_full_reference_is_current_small_and_described():
    runs = h.reference_runs("full")
    assert len(runs) >= 6 and set(runs["status"]) == {"current"}
    assert set(runs["device"]) == {"NVIDIA H200"} and (runs["train_images"] == 50_000).all()
    for folder in FULL.iterdir():
        if folder.is_dir():
            assert sorted(p.name for p in folder.iterdir()) == sorted(ref.RUN_FILES), folder  # no checkpoint
            config = json.loads((folder / "config.json").read_text())
            assert not str(config["data_dir"]).startswith("/"), folder  # no machine path
    text = (FULL / "README.md").read_text()
    block = text.split(ref_write.TABLE_START)[1].split(ref_write.TABLE_END)[0]
    assert block.strip() == ref.runs_table(FULL).strip()  # the table is the rendering of the runs' own files
    for row in runs.itertuples():
        line = next(line for line in block.splitlines() if f"`{row.folder}`" in line)
        assert "python -m helpers.cli train --profile full" in line and row.commit in line and row.date in line


def assert_commands_recreate_run_ids(folder: Path):
    """Each run's README command, parsed as the CLI parses it, gives a config whose run id is the stored one."""
    for m in sorted(folder.glob("*/metrics.json")):
        config = json.loads((m.parent / "config.json").read_text())
        words = ref.run_command(config).split()[4:]
        names = [w[2:].replace("-", "_") for w in words[::2]]
        params = {name: _parse_value(name, v) for name, v in zip(names, words[1::2])}
        params.pop("device", None)
        cfg = make_config(**params, data_dir="synthetic")
        assert run_id(cfg.identity(), config["data"]) == config["run_id"], m.parent.name


def test_the_reference_commands_recreate_each_run_id():
    assert_commands_recreate_run_ids(FULL)


def test_reference_spread_reads_each_experiment_and_both_test_transforms():
    runs = h.reference_runs("full").set_index("folder")
    assert h.reference_spread("full", recipe="crop").values == (runs.loc["crop_seed0", "final_test_acc"],)
    normalize = runs.loc["normalize_seed0"]
    assert h.reference_spread("full", recipe="normalize", mismatch=True).values == (normalize.other_final_test_acc,)
    assert h.reference_spread("full", recipe="normalize", mismatch=True, metric="best_test_acc").values == (
        normalize.other_best_test_acc,)
    assert h.reference_spread("full", recipe="normalize", lr=0.5).values == (
        runs.loc["normalize_lr0.5_seed0", "final_test_acc"],)
    assert h.reference_spread("full", recipe="fast", lr=None).n == 1  # the fast recipe's own lr
    assert h.reference_spread("full", recipe="crop", stem="cifar").n == 0  # another experiment: none recorded
    assert h.reference_spread("full", recipe="none", mismatch=True).n == 0  # not a normalizing run
    with pytest.raises(ValueError, match="'metric' = 'acc' is invalid; valid: final_test_acc | best_test_acc"):
        h.reference_spread("full", recipe="crop", metric="acc")


def test_a_missing_profile_names_itself_and_the_valid_ones(tmp_path):
    with pytest.raises(ref.ReferenceMissingError, match=r"no reference runs for profile 'nope' in report/reference;"
                                                         r" valid: .*full"):
        h.reference_runs("nope")
    with pytest.raises(ref.ReferenceMissingError, match="valid: none yet"):
        h.reference_spread("quick", recipe="none", root=tmp_path)


# ---- provenance -----------------------------------------------------------------------------

def test_a_run_whose_identity_no_longer_matches_is_an_older_version(tmp_path):
    base = tmp_path / "full"
    copy_run(FULL / "none_seed0", base / "same")
    copy_run(FULL / "none_seed0", base / "edited", lr=0.05)  # a stored id that today's Config would not give
    copy_run(FULL / "crop_seed0", base / "unknown", dropout=0.5)
    missing = copy_run(FULL / "flip_rotate_seed0", base / "missing")
    config = json.loads((missing / "config.json").read_text())
    del config["validation"]
    (missing / "config.json").write_text(json.dumps(config))
    status = h.reference_runs("full", root=tmp_path).set_index("folder")["status"]
    assert status["same"] == "current"
    assert status["edited"].startswith("older version: stored run id ") and "is not today's" in status["edited"]
    assert status["unknown"] == "older version: field(s) dropout unknown to today's Config"
    assert status["missing"] == "older version: field(s) validation missing"
    assert h.reference_spread("full", recipe="crop", root=tmp_path).n == 0  # never used silently
    assert h.reference_spread("full", recipe="none", root=tmp_path).values == (78.16,)  # "edited" has lr 0.05
    assert h.reference_spread("full", recipe="none", lr=0.05, root=tmp_path).n == 0
    assert h.reference_spread("full", recipe="none", lr=0.05, include_older=True, root=tmp_path).n == 1
    older = reference_info(tmp_path)["older"]  # the landing page lists them
    assert sorted(o.split(" ")[0] for o in older) == ["edited", "missing", "unknown"]


def test_seeds_of_one_experiment_give_a_spread_and_other_data_is_never_pooled(tmp_path):
    base = tmp_path / "full"
    shutil.copytree(FULL / "none_seed0", base / "none_seed0")
    another_seed(FULL / "none_seed0", base / "none_seed1", 1, 79.0)
    another_seed(FULL / "none_seed0", base / "none_seed2", 2, 78.5)
    s = h.reference_spread("full", recipe="none", root=tmp_path)
    assert s.values == (78.16, 79.0, 78.5) and s.n == 3
    assert s.sd == pytest.approx(math.sqrt(sum((v - s.mean) ** 2 for v in s.values) / 2))
    config = json.loads((base / "none_seed2" / "config.json").read_text())
    data = {**config["data"], "fingerprint": "0" * 64}
    copy_run(base / "none_seed2", base / "none_other_data", data=data,
             run_id=ref.current_run_id({**config, "data": data}))
    with pytest.raises(ValueError, match="matches runs on different data"):
        h.reference_spread("full", recipe="none", root=tmp_path)


def test_a_build_run_finds_its_experiment_at_full_scale():
    quick = make_config("quick", recipe="normalize", data_dir="synthetic").to_dict()
    assert list(ref.counterpart({**quick, "mismatch": True})["folder"]) == ["normalize_seed0"]
    fast = make_config("quick", recipe="fast", data_dir="synthetic").to_dict()  # lr 0.02 at quick, 0.2 at full
    assert list(ref.counterpart(fast)["folder"]) == ["fast_seed0"]
    lr = make_config("smoke", recipe="normalize", lr=0.5).to_dict()
    assert list(ref.counterpart(lr)["folder"]) == ["normalize_lr0.5_seed0"]
    assert ref.counterpart(make_config("quick", recipe="crop", stem="cifar", data_dir="synthetic").to_dict()) is None
    assert ref.counterpart(make_config("quick", recipe="crop", lr=0.3, data_dir="synthetic").to_dict()) is None


# ---- writing a reference folder from a run store --------------------------------------------

@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A run store with three tiny smoke runs (none, seeds 0 and 1; normalize), and a run of another profile."""
    runs = tmp_path_factory.mktemp("runs")
    small = dict(profile="smoke", epochs=1, train_size=100, test_size=50, progress=False, runs_dir=runs)
    for recipe, seed in (("none", 0), ("none", 1), ("normalize", 0)):
        h.train_run(recipe=recipe, seed=seed, **small)
    copy_run(FULL / "crop_seed0", runs / "a_full_run")  # another profile: never written into smoke
    return runs


def test_write_copies_a_profiles_finished_runs_small_files_and_a_readme(store, tmp_path):
    folder = ref.write_reference("smoke", store, root=tmp_path, log=lambda _: None)
    names = sorted(p.name for p in folder.iterdir() if p.is_dir())
    assert names == ["none_epochs1_train_size100_test_size50_seed0", "none_epochs1_train_size100_test_size50_seed1",
                     "normalize_epochs1_train_size100_test_size50_seed0"]
    for name in names:
        assert sorted(p.name for p in (folder / name).iterdir()) == sorted(ref.RUN_FILES)
    runs = h.reference_runs("smoke", root=tmp_path)
    assert set(runs["status"]) == {"current"}
    stored = [json.loads(m.read_text())["final_test_acc"] for m in sorted(store.glob("*/metrics.json"))
              if json.loads((m.parent / "config.json").read_text()).get("recipe") == "none"]
    spread = h.reference_spread("smoke", recipe="none", epochs=1, train_size=100, test_size=50, root=tmp_path)
    assert sorted(spread.values) == sorted(stored) and spread.n == 2
    text = (folder / "README.md").read_text()
    assert text.startswith("# Reference runs: profile `smoke`")
    for row in runs.itertuples():
        line = next(line for line in text.splitlines() if f"`{row.folder}`" in line)
        assert f"--seed {row.seed}" in line and row.commit in line and row.date in line and "| current |" in line
    assert not list(tmp_path.glob(".*"))  # no temporary folder left
    assert_commands_recreate_run_ids(folder)


def test_write_keeps_the_readme_text_and_add_keeps_the_runs_there(store, tmp_path):
    folder = ref.write_reference("smoke", store, root=tmp_path, log=lambda _: None)
    readme_text = (folder / "README.md").read_text()
    (folder / "README.md").write_text(readme_text.replace("Written by", "Notes kept.\n\nWritten by"))
    shutil.copytree(FULL / "crop_seed0", folder / "kept_run")
    ref.write_reference("smoke", store, root=tmp_path, add=True, log=lambda _: None)
    assert (folder / "kept_run").is_dir() and "Notes kept." in (folder / "README.md").read_text()
    assert "`kept_run`" in (folder / "README.md").read_text()
    ref.write_reference("smoke", store, root=tmp_path, log=lambda _: None)  # without add: the store's runs only
    assert not (folder / "kept_run").exists() and "Notes kept." in (folder / "README.md").read_text()


def test_an_interrupted_write_leaves_the_folder_as_it_was(store, tmp_path, monkeypatch):
    folder = ref.write_reference("smoke", store, root=tmp_path, log=lambda _: None)
    before = sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))
    calls = []

    def copy_then_fail(src, dest):
        calls.append(src)
        if len(calls) > 3:
            raise OSError("disk full")
        return shutil.copyfile(src, dest)

    monkeypatch.setattr(ref_write.shutil, "copy2", copy_then_fail)
    with pytest.raises(OSError, match="disk full"):
        ref.write_reference("smoke", store, root=tmp_path, log=lambda _: None)
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) == before
    assert not list(tmp_path.glob(".*"))


def test_older_runs_in_the_store_are_skipped_and_named(store, tmp_path):
    older = tmp_path / "store"
    shutil.copytree(store, older)
    victim = next(p.parent for p in older.glob("*/config.json") if json.loads(p.read_text())["profile"] == "smoke")
    config = json.loads((victim / "config.json").read_text())
    (victim / "config.json").write_text(json.dumps({**config, "run_id": "000000000000"}))
    said = []
    folder = ref.write_reference("smoke", older, root=tmp_path / "ref", log=said.append)
    assert any(s.startswith(f"skipped {victim.name}: older version: stored run id 000000000000") for s in said)
    assert len([p for p in folder.iterdir() if p.is_dir()]) == 2


def test_the_command_line_writes_shows_and_fails_in_one_line(store, tmp_path, capsys):
    assert reference_main(["write", "smoke", "--runs", str(store), "--root", str(tmp_path)]) == 0
    assert "(3 runs)" in capsys.readouterr().out
    assert reference_main(["show", "smoke", "--root", str(tmp_path)]) == 0
    assert capsys.readouterr().out.count("current") == 3
    assert reference_main(["write", "auto", "--runs", str(store), "--root", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == ("error: parameter 'profile' = 'auto' is invalid; "
                                               "valid: smoke | quick | full")
    assert reference_main(["write", "quick", "--runs", str(store), "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no finished 'quick' runs in the run store") and err.count("\n") == 1


# ---- README.md's results table --------------------------------------------------------------

def test_the_readme_table_is_rendered_between_its_markers(tmp_path):
    root = tmp_path / "reference"
    shutil.copytree(FULL, root / "full")
    another_seed(FULL / "crop_seed0", root / "full" / "crop_seed1", 1, 82.65)
    page = tmp_path / "README.md"
    page.write_text(f"# Title\n\nbefore\n\n{readme.START}\nstale\n{readme.END}\n\nafter\n")
    assert readme.update_readme(page, root=root) is True
    text = page.read_text()
    assert text.startswith("# Title\n\nbefore\n\n") and text.endswith(f"{readme.END}\n\nafter\n")
    assert "stale" not in text
    table = text.split(readme.START)[1].split(readme.END)[0]
    lines = table.strip().splitlines()
    assert lines[0] == ("| experiment | the report (one run, 50,000 training images, 60 epochs) | full-scale reference "
                        "(50,000 training images, 60 epochs; mean ± sd, n, device) | quick reference runs, CPU "
                        "(no runs recorded yet; mean ± sd, n) |")
    crop = h.reference_spread("full", recipe="crop", root=root)
    assert f"| random crop, lr 0.1 | 83.98% | {crop.mean:.2f} ± {crop.sd:.2f}% (n=2, NVIDIA H200) | – |" in lines
    assert any(line.startswith("| normalization, lr 0.1, tested without normalization | ≈30% | 33.42% (n=1")
               for line in lines)
    assert any(line.startswith("| normalization, lr 0.1 | – | 78.39% (n=1") for line in lines)
    assert any(line.startswith("| normalization, lr 0.5 | 76.37% (test transform not stated) |") for line in lines)
    assert readme.update_readme(page, root=root) is False  # a second run changes nothing
    page.write_text("# no markers\n")
    with pytest.raises(ValueError, match="README.md has no results table markers <!-- results-table:start -->"):
        readme.update_readme(page, root=root)


def test_the_committed_readme_table_is_the_rendering_of_the_reference():
    text = (ROOT / "README.md").read_text()
    if readme.START not in text:
        pytest.skip("README.md has no results-table markers yet")
    block = text.split(readme.START)[1].split(readme.END)[0]
    assert block.strip() == readme.results_table().strip(), "run: python -m helpers.reference readme"


def test_make_reference_writes_the_profile_then_the_readme_and_clean_report_keeps_it():
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    out = subprocess.run(["make", "-n", "reference", "PROFILE=quick", "ADD=1"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    assert "-m helpers.reference write quick --add" in out and "-m helpers.reference readme" in out
    clean = subprocess.run(["make", "-n", "clean-report"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "! -name reference" in clean


# ---- docs/results.md: every reference run with each seed -----------------------------------------------------

def test_the_detail_tables_give_each_seed_and_both_evaluations_of_a_normalizing_run(tmp_path, capsys):
    root = tmp_path / "reference"
    shutil.copytree(FULL, root / "full")
    another_seed(FULL / "crop_seed0", root / "full" / "crop_seed1", 1, 82.65)
    lines = readme.detail_table("full", root=root).splitlines()
    crop = h.reference_spread("full", recipe="crop", root=root)
    row = next(line for line in lines if line.startswith("| random crop, lr 0.1 | 60 | 83.98% |"))
    assert f"| {crop.mean:.2f} ± {crop.sd:.2f}% (n=2) | 0: {crop.values[0]:.2f}, 1: 82.65 |" in row
    assert lines.index(row) == 2  # the experiment with most seeds comes first
    without = h.reference_spread("full", recipe="normalize", mismatch=True, root=root)
    assert any(line.startswith(f"| normalization, lr 0.1, tested without normalization | 60 | ≈30% | "
                               f"{without.mean:.2f}% (n=1) |") for line in lines)
    page = tmp_path / "results.md"
    page.write_text(f"intro\n{readme.DETAIL_START}\n{readme.DETAIL_END}\nend\n")
    readme_page = tmp_path / "README.md"
    readme_page.write_text(f"{readme.START}\n{readme.END}\n")
    course_page = tmp_path / "course-report.md"  # never the project's own page: it renders the committed reference
    course_page.write_text((ROOT / "docs" / "course-report.md").read_text())
    pages = ["--readme", str(readme_page), "--results", str(page), "--course", str(course_page)]
    assert reference_main(["readme", "--root", str(root), *pages]) == 0
    assert "reference tables updated" in capsys.readouterr().out
    text = page.read_text()
    assert "### `report/reference/full/`" in text and row in text and text.endswith(f"{readme.DETAIL_END}\nend\n")
    page.write_text("no markers\n")
    assert reference_main(["readme", "--root", str(root), *pages]) == 2
    assert "results.md has no reference tables markers <!-- reference-detail:start -->" in capsys.readouterr().err


def test_the_committed_results_page_is_the_rendering_of_the_reference():
    text = (ROOT / "docs" / "results.md").read_text()
    block = text.split(readme.DETAIL_START)[1].split(readme.DETAIL_END)[0]
    assert block.strip() == readme.detail_block().strip(), "run: python -m helpers.reference readme"
