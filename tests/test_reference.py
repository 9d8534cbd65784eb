"""Reference runs inside the project (report/reference/<profile>/): records, spreads, writing, README tables."""
import json
import math
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

import helpers as h
from helpers.tools import reference as ref
from helpers.tools.cli import _parse_value
from helpers.core.config import make_config
from helpers.tools.reference.__main__ import main as reference_main
from helpers.tools.report import readme
from helpers.core.runs import run_id

ROOT = Path(__file__).resolve().parents[1]
FULL = ROOT / "report" / "reference" / "full"


def copy_run(src: Path, dest: Path, results=None, **changes) -> Path:
    """Copy a reference run to `dest`, changing record fields (and results via results=...)."""
    shutil.copytree(src, dest)
    record = json.loads((dest / "record.json").read_text())
    record.update(changes)
    record["results"].update(results or {})
    (dest / "record.json").write_text(json.dumps(record))
    return dest


def another_seed(src: Path, dest: Path, seed: int, final: float) -> Path:
    """Copy a run as the same experiment with another seed: its run id for that seed, another score."""
    record = json.loads((src / "record.json").read_text())
    data = {**record["data"], "subset_seed": seed}
    cfg = make_config(**{**record["config"], "seed": seed, "snapshot_epochs": tuple(record["config"]["snapshot_epochs"])})
    return copy_run(src, dest, {"final_test_acc": final}, config={**record["config"], "seed": seed}, data=data,
                    run_id=run_id(cfg.identity(), data))


# ---- the committed reference folders --------------------------------------------------------

@pytest.mark.parametrize("profile", ["full", "quick"])
def test_the_committed_reference_is_small_described_and_names_its_experiments(profile):
    folder = ROOT / "report" / "reference" / profile
    runs = h.records(folder)
    assert len(runs) >= 6 and runs["run_id"].is_unique and (runs["profile"] == profile).all()
    if profile == "full":
        assert set(runs["device"]) == {"NVIDIA H200"} and (runs["train_images"] == 50_000).all()
    for run in folder.iterdir():
        if run.is_dir():
            assert sorted(p.name for p in run.iterdir()) == sorted(ref.RUN_FILES), run  # no checkpoint
            record = json.loads((run / "record.json").read_text())
            assert not str(record["config"]["data_dir"]).startswith("/"), run  # no machine path
            cfg = make_config(**{**record["config"], "snapshot_epochs": tuple(record["config"]["snapshot_epochs"])})
            assert record["experiment"] == h.experiment_name(cfg) and run.name == ref.folder_name(record)
            history = pd.read_csv(run / "history.csv")
            assert history["test_acc"].iloc[-1] == record["results"]["final_test_acc"]
            assert ("raw_test_acc" in history) == (cfg.recipe == "normalize") == ("raw_final_test_acc" in record["results"])
    text = (folder / "README.md").read_text()
    block = text.split(ref.TABLE_START)[1].split(ref.TABLE_END)[0]
    assert block.strip() == ref.runs_table(folder).strip()  # the table is the rendering of the runs' own files
    for row in runs.itertuples():
        line = next(line for line in block.splitlines() if f"`{row.folder}`" in line)
        assert f"python -m helpers.tools.cli train --profile {profile}" in line and row.commit in line and row.date in line


def test_normalize_runs_are_scored_with_normalize_in_test_and_without_in_raw():
    runs = h.records(ROOT / "report" / "reference" / "quick").set_index("folder")
    for seed in range(3):  # trained at lr 0.5 and scored without Normalize first: migrated so test_* has it
        assert runs.loc[f"normalize_lr0.5_seed{seed}", "final_test_acc"] > runs.loc[
            f"normalize_lr0.5_seed{seed}", "raw_final_test_acc"]


def assert_commands_recreate_run_ids(folder: Path):
    """Each run's README command, parsed as the CLI parses it, gives a config whose run id is the stored one."""
    for path in sorted(folder.glob("*/record.json")):
        record = json.loads(path.read_text())
        words = ref.run_command(record["config"]).split()[4:]
        names = [w[2:].replace("-", "_") for w in words[::2]]
        params = {name: _parse_value(name, v) for name, v in zip(names, words[1::2])}
        cfg = make_config(**params, data_dir="synthetic")
        assert run_id(cfg.identity(), record["data"]) == record["run_id"], path.parent.name


@pytest.mark.parametrize("profile", ["full", "quick"])
def test_the_reference_commands_recreate_each_run_id(profile):
    assert_commands_recreate_run_ids(ROOT / "report" / "reference" / profile)


def test_reference_matches_read_each_experiment_and_both_test_transforms():
    runs = h.records(FULL).set_index("folder")
    assert list(ref.reference_matches("full", "crop")["score"]) == [runs.loc["crop_seed0", "final_test_acc"]]
    normalize = runs.loc["normalize_seed0"]
    without = ref.reference_matches("full", "normalize", raw=True)
    assert (list(without["score"]), list(without["best"])) == ([normalize.raw_final_test_acc],
                                                               [normalize.raw_best_test_acc])
    assert list(ref.reference_matches("full", "normalize, lr 0.5")["score"]) == [
        runs.loc["normalize_lr0.5_seed0", "final_test_acc"]]
    assert len(ref.reference_matches("full", "fast")) == 1  # the fast recipe's own lr
    assert ref.reference_matches("full", "crop, stem cifar").empty  # another experiment: none recorded
    assert ref.reference_matches("full", "none", raw=True).empty  # not a normalizing run
    assert ref.reference_matches("smoke", "none").empty  # no such folder: no runs


def test_a_missing_profile_names_itself_and_the_valid_ones(tmp_path, capsys):
    with pytest.raises(ref.ReferenceMissingError, match=r"no reference runs for profile 'nope' in report/reference;"
                                                         r" valid: .*full"):
        ref.profile_dir("nope")
    with pytest.raises(ref.ReferenceMissingError, match="valid: none yet"):
        ref.profile_dir("quick", root=tmp_path)
    assert reference_main(["show", "nope"]) == 2
    assert capsys.readouterr().err.startswith("error: no reference runs for profile 'nope'")


def test_the_record_names_the_experiment_and_seeds_of_one_give_a_spread(tmp_path):
    base = tmp_path / "full"
    shutil.copytree(FULL / "none_seed0", base / "none_seed0")
    another_seed(FULL / "none_seed0", base / "none_seed1", 1, 79.0)
    another_seed(FULL / "none_seed0", base / "none_seed2", 2, 78.5)
    copy_run(FULL / "none_seed0", base / "renamed", experiment="none, lr 0.05")  # the record, not the config, decides
    s = h.spread(ref.reference_matches("full", "none", root=tmp_path)["score"])
    assert s.values == (78.16, 79.0, 78.5) and s.n == 3
    assert s.sd == pytest.approx(math.sqrt(sum((v - s.mean) ** 2 for v in s.values) / 2))
    assert list(ref.reference_matches("full", "none, lr 0.05", root=tmp_path)["folder"]) == ["renamed"]
    record = json.loads((base / "none_seed2" / "record.json").read_text())
    copy_run(base / "none_seed2", base / "none_other_data", data={**record["data"], "fingerprint": "0" * 64})
    with pytest.raises(ValueError, match="runs on different data .*none_other_data"):
        ref.reference_matches("full", "none", root=tmp_path)


def test_a_build_run_finds_its_experiment_at_full_scale():
    """An experiment keeps its name at every scale: the quick and smoke profiles' runs find their full-scale runs."""
    find = lambda profile, **kw: list(ref.reference_matches(  # noqa: E731
        "full", h.experiment_name(make_config(profile, data_dir="synthetic", **kw)))["folder"])
    assert find("quick", recipe="normalize") == ["normalize_seed0"]
    assert find("quick", recipe="fast", validation=300) == ["fast_seed0"]  # lr 0.02 at quick, 0.2 at full
    assert find("smoke", recipe="normalize", lr=0.5) == ["normalize_lr0.5_seed0"]
    assert find("quick", recipe="crop", stem="cifar") == [] and find("quick", recipe="crop", lr=0.3) == []


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
    assert names == ["none_seed0", "none_seed1", "normalize_seed0"]
    for name in names:
        assert sorted(p.name for p in (folder / name).iterdir()) == sorted(ref.RUN_FILES)
    runs = h.records(folder)
    stored = h.records(store)
    assert sorted(runs["run_id"]) == sorted(stored.loc[stored["profile"] == "smoke", "run_id"])
    spread = h.spread(ref.reference_matches("smoke", "none", root=tmp_path)["score"])
    assert sorted(spread.values) == sorted(stored.loc[stored["recipe"] == "none", "final_test_acc"]) and spread.n == 2
    text = (folder / "README.md").read_text()
    assert text.startswith("# Reference runs: profile `smoke`")
    for row in runs.itertuples():
        line = next(line for line in text.splitlines() if f"`{row.folder}`" in line)
        assert f"--seed {row.seed}" in line and row.commit in line and row.date in line
        assert (f"| {row.raw_final_test_acc:.2f}% |" if row.recipe == "normalize" else "| – |") in line
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

    monkeypatch.setattr(ref.shutil, "copy2", copy_then_fail)
    with pytest.raises(OSError, match="disk full"):
        ref.write_reference("smoke", store, root=tmp_path, log=lambda _: None)
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) == before
    assert not list(tmp_path.glob(".*"))


def test_unfinished_runs_and_runs_of_another_profile_are_not_written(store, tmp_path):
    store_copy = tmp_path / "store"
    shutil.copytree(store, store_copy)
    unfinished = next(p.parent for p in store_copy.glob("*/record.json") if "normalize" in p.read_text())
    (unfinished / "record.json").unlink()  # as if killed before its record was written
    said = []
    folder = ref.write_reference("smoke", store_copy, root=tmp_path / "ref", log=said.append)
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == ["none_seed0", "none_seed1"]
    assert len(said) == 2 and not any("a_full_run" in s for s in said)


def test_the_command_line_writes_shows_and_fails_in_one_line(store, tmp_path, capsys):
    assert reference_main(["write", "smoke", "--runs", str(store), "--root", str(tmp_path)]) == 0
    assert "(3 runs)" in capsys.readouterr().out
    assert reference_main(["show", "smoke", "--root", str(tmp_path)]) == 0
    shown = capsys.readouterr().out
    assert shown.count(" smoke ") == 3 and "normalize" in shown
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
    crop = h.spread(ref.reference_matches("full", "crop", root=root)["score"])
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
    assert block.strip() == readme.results_table().strip(), "run: python -m helpers.tools.reference readme"


def test_make_reference_writes_the_profile_then_the_readme_and_clean_report_keeps_it():
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    out = subprocess.run(["make", "-n", "reference", "PROFILE=quick", "ADD=1"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    assert "-m helpers.tools.reference write quick --add" in out and "-m helpers.tools.reference readme" in out
    clean = subprocess.run(["make", "-n", "clean-report"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "! -name reference" in clean


# ---- docs/results.md: every reference run with each seed -----------------------------------------------------

def test_the_detail_tables_give_each_seed_and_both_evaluations_of_a_normalizing_run(tmp_path, capsys):
    root = tmp_path / "reference"
    shutil.copytree(FULL, root / "full")
    another_seed(FULL / "crop_seed0", root / "full" / "crop_seed1", 1, 82.65)
    lines = readme.detail_table("full", root=root).splitlines()
    crop = h.spread(ref.reference_matches("full", "crop", root=root)["score"])
    row = next(line for line in lines if line.startswith("| random crop, lr 0.1 | 60 | 83.98% |"))
    assert f"| {crop.mean:.2f} ± {crop.sd:.2f}% (n=2) | 0: {crop.values[0]:.2f}, 1: 82.65 |" in row
    assert lines.index(row) == 2  # the experiment with most seeds comes first
    without = h.spread(ref.reference_matches("full", "normalize", raw=True, root=root)["score"])
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
    assert block.strip() == readme.detail_block().strip(), "run: python -m helpers.tools.reference readme"
