"""Without data, a notebook's first cell stops with the message `make report` gives: the three ways to provide it."""
import shutil
from pathlib import Path

import papermill as pm
import pytest

from helpers.core.data import HOW_TO_PROVIDE, DataError, check_data
from helpers.tools.report.build import main as report_main

ROOT = Path(__file__).resolve().parents[1]


def report_error(capsys, *args) -> str:
    """Return the message `make report` prints for its arguments (it must stop with exit code 2)."""
    assert report_main(list(args)) == 2
    err = capsys.readouterr().err.strip()
    prefix = "make report: error: "
    assert err.startswith(prefix), err
    return err[len(prefix):]


def test_check_data_names_the_three_ways_for_a_missing_folder(tmp_path):
    with pytest.raises(DataError) as e:
        check_data("quick", str(tmp_path / "nowhere"))
    assert str(e.value) == f"parameter 'data_dir' = {str(tmp_path / 'nowhere')!r}: no such folder. {HOW_TO_PROVIDE}"
    assert check_data("quick", "synthetic") == check_data("smoke") == "synthetic stand-in (smoke profile)"


def test_a_notebook_without_data_stops_in_its_first_cell_with_make_reports_message(tmp_path, monkeypatch, capsys):
    missing = tmp_path / "cifar10-nowhere"
    monkeypatch.setenv("CIFAR10_DIR", str(missing))
    expected = report_error(capsys, "--profile", "quick", "--out", str(tmp_path / "report"))
    assert HOW_TO_PROVIDE in expected and str(missing) in expected

    notebook = tmp_path / "01_baseline.ipynb"
    shutil.copy(ROOT / "notebooks" / "01_baseline.ipynb", notebook)
    with pytest.raises(pm.PapermillExecutionError) as e:
        pm.execute_notebook(str(notebook), str(tmp_path / "executed.ipynb"), parameters={"profile": "quick"},
                            cwd=str(tmp_path), progress_bar=False, kernel_name="python3")
    assert e.value.ename == "DataError" and e.value.evalue == expected
    # the first cell after the parameters (papermill puts its injected parameters between them)
    assert "h.check_data(" in e.value.source and "import helpers as h" in e.value.source
    assert not (tmp_path / "report" / "executed").exists()
