"""Notebooks through papermill: parameters are checked at once (anywhere), and 01 runs on real images.

The real-data test runs only where CIFAR10_DIR or ../shared/data/cifar10-jpeg exists; it trains two
epochs on 10,000 images into a private run store, checks that the run learned (above 25%) and that the
notebook shows its figures, then runs the notebook again and checks it loads.
"""
import os
from pathlib import Path

import nbformat
import papermill as pm
import pytest

import helpers as h
from helpers.core import config as config_mod

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
FOLDER = os.environ.get("CIFAR10_DIR") or str(ROOT.parent / "shared" / "data" / "cifar10-jpeg")
NOTEBOOK_NAMES = ["01_baseline.ipynb", "02_augmentations.ipynb", "03_normalization_lr_fix.ipynb", "05_faster.ipynb"]


def outputs(nb, kind: str) -> str:
    """Return every output of the given MIME type (or "stream") of an executed notebook, joined."""
    parts = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            if kind == "stream" and o.output_type == "stream":
                parts.append(o.text)
            elif kind in o.get("data", {}):
                parts.append(o["data"][kind])
    return "\n".join(parts)


@pytest.mark.parametrize("name", NOTEBOOK_NAMES)
def test_parameters_cell_is_first_tagged_and_typed(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    first_code = next(c for c in nb.cells if c.cell_type == "code")
    assert "parameters" in first_code.metadata.get("tags", [])
    params = {p["name"]: p for p in pm.inspect_notebook(str(NOTEBOOKS / name)).values()}
    assert {"profile", "epochs", "lr", "train_size", "test_size", "seed", "seeds", "data_dir", "device"} <= set(params)
    assert all(p["inferred_type_name"] != "None" and p["help"] for p in params.values()), params
    assert set(params) - {"fix_lr", "seeds"} <= set(config_mod.FIELDS)  # the Config's names, plus seeds and 03's fix_lr
    assert params["seeds"]["default"] == "None" and "Optional[int]" in params["seeds"]["inferred_type_name"]
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "commit notebooks cleared"


@pytest.mark.parametrize("name", NOTEBOOK_NAMES)
def test_every_run_of_an_experiment_notebook_is_trained_in_one_train_many_call(name):
    # one call lets a GPU train every recipe and seed at once; a stray train_run would train alone
    code = "\n".join(c.source for c in nbformat.read(NOTEBOOKS / name, as_version=4).cells if c.cell_type == "code")
    assert code.count("h.train_many(") == 1 and "h.train_run(" not in code
    assert "h.with_seeds(" in code


@pytest.mark.parametrize("name", sorted(p.name for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")))
def test_papermill_infers_every_parameter_with_its_comment(name):
    # papermill's parser gives up on a line silently (an "=" inside the comment was enough), and the
    # parameter then vanishes from --help-notebook; compare with what Python itself sees in the cell.
    import ast
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    assigned = [n.target.id for n in ast.parse(cell.source).body if isinstance(n, ast.AnnAssign)]
    inferred = {p["name"]: p for p in pm.inspect_notebook(str(NOTEBOOKS / name)).values()}
    assert list(inferred) == assigned
    assert all(p["help"] for p in inferred.values()), [n for n, p in inferred.items() if not p["help"]]


@pytest.mark.parametrize("name,param,value", [("01_baseline.ipynb", "profile", "huge"),
                                              ("02_augmentations.ipynb", "epochs", "ten"),
                                              ("03_normalization_lr_fix.ipynb", "fix_lr", -0.5),
                                              ("05_faster.ipynb", "seeds", 0)])
def test_a_bad_parameter_fails_at_once_with_the_config_error(tmp_path, name, param, value):
    with pytest.raises(pm.PapermillExecutionError) as err:
        pm.execute_notebook(str(NOTEBOOKS / name), str(tmp_path / name), parameters={param: value},
                            cwd=str(NOTEBOOKS), progress_bar=False, kernel_name="python3")
    assert err.value.ename == "ConfigError"
    assert repr(value) in err.value.evalue and "valid" in err.value.evalue
    assert "h.make_config(" in err.value.source  # it failed in the first cell after the parameters
    nb = nbformat.read(tmp_path / name, as_version=4)
    failed = next(i for i, c in enumerate(nb.cells) if c.get("source", "").startswith("import helpers"))
    later = [c for c in nb.cells[failed + 1:] if c.cell_type == "code"]
    assert later and all(c.execution_count is None for c in later)  # nothing after it ran


@pytest.mark.real_data
@pytest.mark.skipif(not Path(FOLDER, "train").is_dir(), reason=f"no CIFAR-10 folder at {FOLDER}")
def test_baseline_notebook_on_real_images_renders_the_runs_accuracy(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNS_DIR", str(tmp_path / "runs"))  # the kernel inherits it: a private store
    params = dict(profile="full", epochs=2, train_size=10_000, test_size=2_000, data_dir=FOLDER, device="cpu",
                  seeds=1)  # full's default is 3 seeds; one keeps this CPU test as short as before
    out = tmp_path / "01.ipynb"
    pm.execute_notebook(str(NOTEBOOKS / "01_baseline.ipynb"), str(out), parameters=params,
                        cwd=str(NOTEBOOKS), progress_bar=False, kernel_name="python3")
    nb = nbformat.read(out, as_version=4)
    summary = h.records(tmp_path / "runs")
    assert len(summary) == 1 and summary.loc[0, "data_source"] == "folder" and summary.loc[0, "epochs"] == 2
    final, best = summary.loc[0, "final_test_acc"], summary.loc[0, "best_test_acc"]
    assert final > 25, summary.loc[0]  # it learns: chance is 10%
    assert h.load_run(tmp_path / "runs" / summary.loc[0, "run_id"]).metrics["test_images"] == 2000
    text, tables = outputs(nb, "text/markdown"), outputs(nb, "text/html")
    assert f"last epoch {final:.2f}% (n=1)" in tables and f"best epoch {best:.2f}% (n=1)" in tables  # the verdicts
    assert ">79.44<" in tables  # the report's figure, beside the measured ones
    assert "**Not comparable with the report**: the `full` profile was overridden" in text
    assert "imagenet stem**: layer4 is 512×1×1" in text
    assert "epoch   2/2" in outputs(nb, "stream")  # it trained, one line per epoch

    again = tmp_path / "01-again.ipynb"
    pm.execute_notebook(str(NOTEBOOKS / "01_baseline.ipynb"), str(again), parameters=params,
                        cwd=str(NOTEBOOKS), progress_bar=False, kernel_name="python3")
    nb2 = nbformat.read(again, as_version=4)
    assert "starting" not in outputs(nb2, "stream") and "epoch " not in outputs(nb2, "stream")  # loaded, not trained
    assert f"last epoch {final:.2f}% (n=1)" in outputs(nb2, "text/html")
