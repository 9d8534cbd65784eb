"""`make report`: parameters, the up-front checks, execution and reuse, the cleaned pages, and the
report read in headless Chromium as a student would read it.

Most tests use small throwaway notebooks (seconds); the browser test also builds the real notebooks
in the smoke profile, in the session's run store (conftest.py), so nbval and the report share runs.
"""
import base64
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlparse

import nbformat
import pytest
from bs4 import BeautifulSoup

from helpers.tools import report as rp
from helpers.core.config import ConfigError, experiment_name, make_config
from helpers.core.data import DataError
from helpers.notebook import results as results_mod

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")

PARAMS_ALPHA = ('from typing import Optional\n\n'
                'profile: str = "auto"  # auto | smoke | quick | full\n'
                'epochs: int = 2  # training epochs\n'
                'train_size: int = 200  # training images\n'
                'data_dir: Optional[str] = None  # data folder, "synthetic", or None')
PIXEL_PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
PARAMS_BETA = 'profile: str = "auto"  # auto | smoke | quick | full\nlr: float = 0.05  # learning rate'


def _notebook(cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = cells
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def write_notebooks(folder: Path, failing: bool = False) -> Path:
    """Write two small notebooks (and, if asked, a failing third and a fourth) into folder; return it."""
    md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    folder.mkdir(parents=True, exist_ok=True)
    alpha = _notebook([
        md("# Alpha: one small run"),
        code(PARAMS_ALPHA, metadata={"tags": ["parameters"]}),
        code("import warnings\nimport helpers as h\n"
             "run = h.train_run(profile=profile, epochs=epochs, train_size=train_size, test_size=100)\nprint(run)"),
        code("warnings.warn('noisy warning')\nfrom tqdm.auto import tqdm\nfor _ in tqdm(range(3)):\n    pass\n"
             "print('step 1\\rstep 2')"),
        md("## Accuracy per epoch\n\n![a picture beside the notebook](pixel.png)"),
        code("import matplotlib.pyplot as plt\nax = run.history.plot(x='epoch', y='test_acc')\nplt.show()",
             metadata={"tags": ["report-figure"]}),
        code("print('left out of the pages')", metadata={"tags": ["remove-cell"]}),
    ])
    beta = _notebook([
        md("# Beta: a second run"),
        code(PARAMS_BETA, metadata={"tags": ["parameters"]}),
        code("import helpers as h\n"
             "crop = h.train_run(profile=profile, recipe='crop', lr=lr, epochs=2, train_size=200, test_size=100)\n"
             "again = h.train_run(profile=profile, epochs=2, train_size=200, test_size=100)  # alpha's run\n"
             "crop"),
    ])
    (folder / "pixel.png").write_bytes(base64.b64decode(PIXEL_PNG))
    nbformat.write(alpha, folder / "01_alpha.ipynb")
    nbformat.write(beta, folder / "02_beta.ipynb")
    if failing:
        nbformat.write(_notebook([md("# Fails"), code("x = 1"), code("raise ValueError('boom')")]),
                       folder / "03_fails.ipynb")
        nbformat.write(_notebook([md("# Never"), code("print('never runs')")]), folder / "04_never.ipynb")
    return folder


@pytest.fixture(scope="module")
def notebooks(tmp_path_factory):
    return write_notebooks(tmp_path_factory.mktemp("notebooks"))


@pytest.fixture(scope="module")
def built(notebooks, tmp_path_factory):
    """The report of the throwaway notebooks, built once for this module (smoke profile)."""
    out = tmp_path_factory.mktemp("report")
    rp.build_report("smoke", {}, out, notebooks)
    return out


# ---- parameters -----------------------------------------------------------------------------

def test_numbered_notebooks_are_found_in_order(tmp_path):
    for name in ("02_b.ipynb", "01_a.ipynb", "scratch.ipynb", "1_short.ipynb", "10_c.ipynb"):
        (tmp_path / name).write_text("{}")
    assert [p.name for p in rp.find_notebooks(tmp_path)] == ["01_a.ipynb", "02_b.ipynb", "10_c.ipynb"]
    with pytest.raises(rp.ReportError, match="no numbered notebooks"):
        rp.find_notebooks(tmp_path / "empty-or-missing")


def test_each_notebook_gets_only_the_parameters_it_declares(notebooks):
    nbs = rp.find_notebooks(notebooks)
    plan = rp.plan_parameters(nbs, {"epochs": "3", "lr": "0.02"}, "smoke")
    assert plan[nbs[0]] == {"epochs": 3, "profile": "smoke"}
    assert plan[nbs[1]] == {"lr": 0.02, "profile": "smoke"}


def test_a_parameter_no_notebook_declares_fails_naming_it(notebooks):
    with pytest.raises(rp.ReportError, match=r"'bogus'.*declared by no notebook; valid: .*epochs.*lr"):
        rp.plan_parameters(rp.find_notebooks(notebooks), {"bogus": 1, "epochs": 3}, "smoke")


def test_command_line_values_are_typed_as_the_notebook_declares_them():
    assert rp.coerce("epochs", "5", "Optional[int]") == 5
    assert rp.coerce("lr", "1e-3", "float") == pytest.approx(0.001)
    assert rp.coerce("data_dir", "none", "Optional[str]") is None
    assert rp.coerce("data_dir", "123", "Optional[str]") == "123"
    assert rp.coerce("snapshot_epochs", "2,3,4", "Optional[list]") == [2, 3, 4]
    assert rp.coerce("nesterov", "true", "bool") is True
    assert rp.coerce("x", "1e-3", "None") == pytest.approx(0.001)  # undeclared type: YAML, then a number
    assert rp.coerce("epochs", 7, "int") == 7  # values from a YAML file keep their type
    with pytest.raises(rp.ReportError, match=r"parameter 'epochs' = 'five' is invalid; valid: a value of type int"):
        rp.coerce("epochs", "five", "int")


def test_params_file_then_sets(tmp_path):
    f = tmp_path / "my.yaml"
    f.write_text("epochs: 3\nlr: 0.05\n")
    params = rp.load_params_file(f)
    params.update(rp.parse_sets(["lr=0.2"]))
    assert params == {"epochs": 3, "lr": "0.2"}
    with pytest.raises(rp.ReportError, match="name=value"):
        rp.parse_sets(["lr"])
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(rp.ReportError, match="mapping"):
        rp.load_params_file(tmp_path / "list.yaml")


# ---- checks before any work -----------------------------------------------------------------

def test_a_bad_value_fails_before_any_notebook_runs(notebooks, tmp_path):
    with pytest.raises(ConfigError, match="'epochs' = -1"):
        rp.build_report("smoke", {"epochs": "-1"}, tmp_path / "out", notebooks)
    assert not (tmp_path / "out" / "executed").exists()


def test_missing_data_fails_at_once_with_the_three_ways(notebooks, tmp_path, monkeypatch):
    with pytest.raises(DataError, match="no such folder.*three ways"):
        rp.build_report("quick", {"data_dir": str(tmp_path / "nowhere")}, tmp_path / "out", notebooks)
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("CIFAR10_DIR", str(tmp_path / "empty"))
    with pytest.raises(DataError, match="no 'train/' folder.*three ways"):
        rp.build_report("quick", {}, tmp_path / "out", notebooks)
    assert not (tmp_path / "out" / "executed").exists()


def test_smoke_needs_no_data():
    assert "synthetic" in rp.check_data("smoke")


def test_the_data_line_names_the_folder_without_a_machine_path():
    folder = os.environ.get("CIFAR10_DIR")
    if not folder or not Path(folder).is_dir():
        pytest.skip("needs the real data ($CIFAR10_DIR)")
    line = rp.check_data("quick", folder)
    assert line.startswith("image folder ") and "(fingerprint " in line
    assert str(Path(folder).resolve()) not in line and " /" not in line  # relative to the project, or its name


# ---- the pages ------------------------------------------------------------------------------

def test_outputs_are_cleaned_of_warnings_widgets_and_bar_residue():
    outputs = [
        nbformat.v4.new_output("stream", name="stderr",
                               text="/x/y.py:3: UserWarning: noisy\n  warnings.warn('noisy')\n"),
        nbformat.v4.new_output("stream", name="stderr", text="\r  0%|          | 0/3 [00:00<?, ?it/s]\r100%|#| 3/3\n"),
        nbformat.v4.new_output("display_data", data={
            "application/vnd.jupyter.widget-view+json": {"model_id": "abc"}, "text/plain": "HBox(children=...)"}),
        nbformat.v4.new_output("stream", name="stdout", text="step 1\rstep 2\nepoch 1 done\n"),
        nbformat.v4.new_output("stream", name="stderr", text="a message worth keeping\n"),
    ]
    kept = rp.clean_outputs(outputs)
    assert [o.get("text") for o in kept] == ["step 2\nepoch 1 done\n", "a message worth keeping\n"]


def test_the_report_has_a_landing_page_and_two_pages_per_notebook(built):
    for name in ("index.html", "01_alpha.html", "02_beta.html", "code/01_alpha.html", "code/02_beta.html",
                 "executed/01_alpha.ipynb", "executed/02_beta.ipynb"):
        assert (built / name).is_file(), name
    reader, with_code = (built / "01_alpha.html").read_text(), (built / "code/01_alpha.html").read_text()
    assert "train_run" not in reader and "train_run" in with_code  # the code is highlighted: no literal call
    for page in (reader, with_code):
        outputs = " ".join(o.get_text() for o in BeautifulSoup(page, "html.parser").select(".jp-OutputArea"))
        assert "step 2" in outputs and "step 1" not in outputs
        for noise in ("HBox(", "model not found", "noisy warning", "UserWarning", "it/s"):
            assert noise not in outputs
        assert "left out of the pages" not in page
        assert "require.min.js" not in page and "html-manager" not in page  # no script from the network
    images = BeautifulSoup(reader, "html.parser").find_all("img")
    assert [i["alt"] for i in images] == ["a picture beside the notebook", "Figure: Accuracy per epoch"]
    assert all(i["src"].startswith("data:image/png;base64,") for i in images)  # the markdown one too


def test_the_summary_has_one_row_per_experiment_the_notebooks_used(built):
    import helpers as h
    used = []
    for record in sorted((built / "executed").glob("*.json")):
        used += [run for run in json.loads(record.read_text())["runs"] if run not in used]
    assert len(used) == 2  # alpha's run, and beta's crop run (beta's reuse of alpha's run is one row)
    soup = BeautifulSoup((built / "index.html").read_text(), "html.parser")
    rows = soup.select("table.summary tbody tr")
    assert [r["data-runs"].split() for r in rows] == [[Path(u).name] for u in used]
    heads = [th.get_text(" ", strip=True) for th in soup.select("table.summary thead th")]
    assert heads[2:5] == ["report one run, 50,000 images, 60 epochs",
                          "full-scale reference mean ± sd (n seeds), report/reference/full",
                          "this build mean ± sd (n seeds), smoke profile"]
    for row, run in zip(rows, used):
        metrics = json.loads((Path(run) / "record.json").read_text())["results"]
        cells = [td.get_text(" ", strip=True) for td in row.find_all("td")]
        assert cells[4] == f"{metrics['final_test_acc']:.2f}% (n=1)"  # this build: one seed
    alpha = [td.get_text(" ", strip=True) for td in rows[0].find_all("td")]
    assert alpha[2] == "79.44%"  # recipe none, lr 0.1
    reference = results_mod.stored_spread("full", "none")  # alpha's experiment at full scale, from report/reference
    assert alpha[3].startswith(f"{reference.format()}") and "NVIDIA H200" in alpha[3]
    beta = [td.get_text(" ", strip=True) for td in rows[1].find_all("td")]
    assert beta[3] == "—"  # crop at lr 0.05: no full-scale reference run
    assert "report/reference/full" in soup.select_one("table.summary + p.note").get_text()
    assert soup.select_one("#profile").get_text().split()[:2] == ["Profile", "smoke:"]
    figures = soup.select(".figures figure img")
    assert len(figures) == 1 and figures[0]["src"].startswith("data:image/png;base64,")


def test_a_second_build_reuses_what_did_not_change(notebooks, built):
    before = {p.name: p.stat().st_mtime_ns for p in (built / "executed").glob("*.ipynb")}
    rp.build_report("smoke", {}, built, notebooks)
    assert {p.name: p.stat().st_mtime_ns for p in (built / "executed").glob("*.ipynb")} == before
    assert "reused" in (built / "index.html").read_text()
    # a parameter only alpha declares re-executes alpha alone
    rp.build_report("smoke", {"epochs": "3"}, built, notebooks)
    after = {p.name: p.stat().st_mtime_ns for p in (built / "executed").glob("*.ipynb")}
    assert after["01_alpha.ipynb"] != before["01_alpha.ipynb"]
    assert after["02_beta.ipynb"] == before["02_beta.ipynb"]
    assert json.loads((built / "executed/01_alpha.json").read_text())["params"]["epochs"] == 3
    rp.build_report("smoke", {}, built, notebooks)  # leave the module's report as the fixture built it


def test_a_failing_notebook_stops_the_run_naming_it_and_the_cell(tmp_path):
    nbs = write_notebooks(tmp_path / "nbs", failing=True)
    out = tmp_path / "out"
    with pytest.raises(rp.ReportError) as err:
        rp.build_report("smoke", {}, out, nbs)
    msg = str(err.value)
    assert "03_fails.ipynb" in msg and "In [2]" in msg and "ValueError: boom" in msg
    assert "raise ValueError('boom')" in msg and str(out / "executed" / "03_fails.ipynb") in msg
    partial = nbformat.read(out / "executed" / "03_fails.ipynb", as_version=4)
    assert any(o.output_type == "error" and o.ename == "ValueError" for c in partial.cells
               for o in c.get("outputs", []))
    assert not (out / "executed" / "04_never.ipynb").exists() and not (out / "index.html").exists()
    assert not (out / "executed" / "03_fails.json").exists()  # a failed notebook is never reused


def test_a_run_another_process_is_training_is_waited_for(notebooks, tmp_path, monkeypatch):
    import sys
    import helpers as h
    from helpers.core.data import data_identity
    from helpers.core.runs import run_id
    monkeypatch.setenv("RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.delenv("RUN_LOCK_WAIT", raising=False)
    cfg = h.make_config(profile="smoke", epochs=2, train_size=200, test_size=100)  # alpha's run
    folder = tmp_path / "runs" / run_id(cfg.identity(), data_identity(cfg.data_dir, 200, 100, cfg.seed))
    folder.mkdir(parents=True)
    released = tmp_path / "released"
    # "another process", training alpha's run: it holds the run's lock for 3 s, then notes when it let go
    other = subprocess.Popen([sys.executable, "-c", "import fcntl, os, sys, time; "
                              "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); fcntl.flock(fd, fcntl.LOCK_EX); "
                              "print('held', flush=True); time.sleep(3); open(sys.argv[2], 'w').close()",
                              str(folder / "lock"), str(released)], stdout=subprocess.PIPE)
    try:
        assert other.stdout.readline() == b"held\n"
        rp.build_report("smoke", {}, tmp_path / "out", notebooks)
    finally:
        other.kill()
    assert "RUN_LOCK_WAIT" not in os.environ  # the builder's setting does not outlive the build
    assert (folder / "record.json").exists() and (tmp_path / "out" / "index.html").exists()
    # trained after the other process let go, never beside it
    assert released.stat().st_mtime_ns <= (folder / "config.json").stat().st_mtime_ns


def test_the_runs_a_notebook_used_are_the_finished_runs_its_outputs_name(tmp_path, monkeypatch):
    import helpers as h
    monkeypatch.setenv("RUNS_DIR", str(tmp_path / "runs"))
    run, other = (h.train_run(profile="smoke", epochs=1, train_size=100, test_size=50, seed=s, progress=False)
                  for s in (0, 1))
    (tmp_path / "runs" / "0123456789ab").mkdir()  # a run never finished
    out = nbformat.v4.new_output
    nb = _notebook([nbformat.v4.new_code_cell(outputs=[
        out("execute_result", data={"text/html": f"<td>{other.id}</td><td>0123456789ab</td>", "text/plain": "x"}),
        out("stream", name="stdout", text=f"{run!r}\n{other.id} again; deadbeef0000 was never trained\n")])])
    nbformat.write(nb, tmp_path / "nb.ipynb")
    assert rp.used_runs(tmp_path / "nb.ipynb") == [str(tmp_path / "runs" / r.id) for r in (other, run)]


def test_command_line_reports_errors_without_a_traceback(notebooks, tmp_path, capsys):
    code = rp.main(["--profile", "smoke", "--notebooks", str(notebooks), "--out", str(tmp_path),
                    "--set", "bogus=1"])
    assert code == 2 and "make report: error: parameter(s) 'bogus' declared by no notebook" in capsys.readouterr().err


# ---- read in a browser ----------------------------------------------------------------------

# Injected into a copy of each page: after load, record every image's natural size, so a broken
# image (undecodable data, missing file) shows as naturalWidth 0 in the dumped DOM.
CHECK_SCRIPT = """<script>
window.addEventListener('load', function () {
  var images = Array.prototype.map.call(document.images, function (i) {
    return {src: (i.getAttribute('src') || '').slice(0, 60), ok: i.complete && i.naturalWidth > 0};
  });
  var pre = document.createElement('pre');
  pre.id = 'reader-check';
  pre.textContent = JSON.stringify({images: images});
  document.body.appendChild(pre);
});
</script>"""

browser = pytest.mark.skipif(not CHROMIUM.exists(),
                             reason="headless check needs Debian's chromium at /usr/bin/chromium "
                                    "(apt-get install chromium; .ci/run installs it)")


def chromium(*args, timeout=120) -> str:
    """Run headless Chromium with the project's flags; return its stdout."""
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        result = subprocess.run(
            [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", *args], capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def read_in_browser(page: Path) -> tuple[BeautifulSoup, list]:
    """Return the page's DOM after load in Chromium, and each image's {src, ok} as Chromium decoded it."""
    copy = page.with_name(f".check-{page.name}")  # beside the page, so relative paths resolve alike
    copy.write_text(page.read_text(encoding="utf-8").replace("</body>", CHECK_SCRIPT + "</body>", 1),
                    encoding="utf-8")
    try:
        dom = chromium("--virtual-time-budget=10000", "--dump-dom", copy.as_uri())
    finally:
        copy.unlink()
    soup = BeautifulSoup(dom, "html.parser")
    check = soup.select_one("#reader-check")
    assert check is not None, f"{page.name}: the load check did not run"
    return soup, json.loads(check.get_text())["images"]


def broken_links(page: Path, soup: BeautifulSoup) -> list[str]:
    """Return the page's relative links whose file (or #anchor) does not exist."""
    broken = []
    for a in soup.find_all("a", href=True):
        url = urlparse(a["href"])
        if url.scheme or url.netloc:
            continue  # a link out of the report
        target = (page.parent / unquote(url.path)).resolve() if url.path else page
        if not target.is_file():
            broken.append(a["href"])
        elif url.fragment and target.suffix == ".html":
            ids = BeautifulSoup(target.read_text(encoding="utf-8"), "html.parser").find_all(id=url.fragment)
            if not ids:
                broken.append(a["href"])
    return broken


def check_report_in_browser(out: Path) -> list[Path]:
    """Open the landing page and every page it links to; assert images, links and outputs; return the pages."""
    soup, _ = read_in_browser(out / "index.html")
    pages = [out / "index.html"]
    for a in soup.select("ol.notebooks a"):
        target = (out / a["href"]).resolve()
        if target.suffix == ".html" and target not in pages:
            pages.append(target)
    assert len(pages) == 1 + 2 * len(soup.select("ol.notebooks > li"))
    for page in pages:
        dom, images = read_in_browser(page)
        assert all(i["ok"] for i in images), f"{page}: broken images {[i for i in images if not i['ok']]}"
        assert all(i["src"].startswith("data:") for i in images), f"{page}: an image not embedded"
        assert broken_links(page, dom) == [], page
        assert not dom.select('[data-mime-type="application/vnd.jupyter.stderr"]'), f"{page}: error/stderr output"
        text = dom.get_text()
        for noise in ("HBox(", "model not found", "Traceback"):
            assert noise not in text, f"{page}: {noise!r} on the page"
    return pages


@browser
def test_the_browser_check_fails_on_a_broken_image_and_link(tmp_path):
    good = PIXEL_PNG
    page = tmp_path / "page.html"
    page.write_text(f'<html><body><img src="data:image/png;base64,{good}"><img src="data:image/png;base64,AAAA">'
                    f'<img src="missing.png"><a href="page.html">me</a><a href="gone.html">gone</a>'
                    f'<a href="page.html#nowhere">x</a></body></html>')
    soup, images = read_in_browser(page)
    assert [i["ok"] for i in images] == [True, False, False]
    assert broken_links(page, soup) == ["gone.html", "page.html#nowhere"]


@browser
def test_the_throwaway_report_reads_in_a_browser(built):
    pages = check_report_in_browser(built)
    assert len(pages) == 5


@browser
def test_the_smoke_report_of_the_notebooks_reads_in_a_browser(tmp_path):
    """The real notebooks, built in the smoke profile, read as a student would: the issue's check."""
    try:
        notebooks = rp.find_notebooks(ROOT / "notebooks")
    except rp.ReportError:
        pytest.skip("no numbered notebooks in notebooks/ yet")
    out = tmp_path / "report"
    rp.build_report("smoke", {}, out, ROOT / "notebooks")
    pages = check_report_in_browser(out)
    assert len(pages) == 1 + 2 * len(notebooks)
    soup = BeautifulSoup((out / "index.html").read_text(), "html.parser")
    used = {run for record in (out / "executed").glob("*.json") for run in json.loads(record.read_text())["runs"]}
    # one row per run, two for a normalizing run (scored with and without Normalize at test time)
    records = {u: json.loads((Path(u) / "record.json").read_text()) for u in used}
    per_run = {u: 2 if "raw_final_test_acc" in r["results"] else 1 for u, r in records.items()}
    rows = soup.select("table.summary tbody tr")
    listed = sorted(run for r in rows for run in r["data-runs"].split())
    assert listed == sorted(Path(u).name for u, n in per_run.items() for _ in range(n))  # 03's normalize: twice
    # one row per experiment (runs that differ only in their seed) and test transform
    experiments = set()
    for r in records.values():
        experiments.add((r["experiment"], False))
        if "raw_final_test_acc" in r["results"]:
            experiments.add((r["experiment"], True))
    assert len(rows) == len(experiments) > 0
    assert all(r.find_all("td")[4].get_text(" ", strip=True).endswith(f"(n={len(r['data-runs'].split())})")
               for r in rows)
    for nb in (out / "executed").glob("*.ipynb"):
        executed = nbformat.read(nb, as_version=4)
        assert not [o for c in executed.cells for o in c.get("outputs", []) if o.output_type == "error"]
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report_landing_smoke.png"
    shot.unlink(missing_ok=True)
    chromium(f"--screenshot={shot}", "--window-size=1280,2000", (out / "index.html").as_uri())
    assert shot.stat().st_size > 10_000


def test_make_report_passes_profile_parameters_and_files_through():
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    out = subprocess.run(["make", "-n", "report", "PROFILE=quick", "EPOCHS=5", "FIX_LR=0.4", "PARAMS=my.yaml",
                          "SET=seed=1 data_dir=synthetic", "REPORT_DIR=/tmp/r", "RERUN=1"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    line = next(line for line in out.splitlines() if "-m helpers.tools.report" in line).split()
    assert line[line.index("--profile") + 1] == "quick" and line[line.index("--out") + 1] == "/tmp/r"
    sets = [line[i + 1] for i, word in enumerate(line) if word == "--set"]
    assert sets == ["epochs=5", "fix_lr=0.4", "seed=1", "data_dir=synthetic"]
    assert "--params-file" in line and "my.yaml" in line and "--rerun" in line
    plain = subprocess.run(["make", "-n", "report"], cwd=ROOT, capture_output=True, text=True, check=True,
                           env={**os.environ, "EPOCHS": "9"}).stdout  # only make's command line counts
    assert "--set" not in plain and "--rerun" not in plain


def test_seeds_of_one_experiment_share_a_row_and_a_normalizing_one_gives_two(tmp_path):
    executed = []
    for name, seed, final, raw in (("abc", 0, 48.1, 17.6), ("abd", 1, 50.1, 19.6)):
        run = tmp_path / "runs" / name
        run.mkdir(parents=True)
        cfg = make_config("quick", recipe="normalize", epochs=4, seed=seed, data_dir="/f")
        (run / "record.json").write_text(json.dumps({
            "run_id": name, "experiment": experiment_name(cfg), "config": cfg.to_dict(), "data": {}, "env": {},
            "results": {"final_test_acc": final, "best_test_acc": final + 0.3, "train_images": 3000,
                        "data_source": "folder", "raw_final_test_acc": raw, "raw_best_test_acc": raw + 1}}))
        executed.append(rp.Executed(Path("03_x.ipynb"), tmp_path / "03_x.ipynb", {}, [str(run)]))
    rows = rp.experiment_rows(executed, [{"title": "03", "href": "03_x.html"}] * 2)
    assert [(r["experiment"], r["runs"], r["build"].values) for r in rows] == [
        ("normalization, lr 0.1", ["abc", "abd"], (48.1, 50.1)),
        ("normalization, lr 0.1, tested without normalization", ["abc", "abd"], (17.6, 19.6))]
    assert rows[0]["measured"] == pytest.approx(49.1) and rows[0]["build"].sd == pytest.approx(2 ** 0.5)
    assert rows[0]["best"] == pytest.approx(49.4) and rows[1]["best"] == pytest.approx(19.6)
    assert rows[1]["report"] == "≈30%" and rows[0]["report"] is None  # the report never tested with Normalize
    assert [r["reference"]["folders"] for r in rows] == [["normalize_seed0"]] * 2  # the same name at full scale
    assert rp.report_figure("normalize, lr 0.5", 0.5) == rp.report_figure("normalize, lr 0.5", 0.5, raw=True) == (
        76.37, "76.37% (test transform not stated)")
    assert rp.report_figure("none, stem cifar", 0.1) is None and rp.report_figure("crop", 0.1)[0] == 83.98


def test_a_relative_data_folder_keeps_its_meaning_in_the_notebooks_folder(tmp_path, monkeypatch):
    """Kernels run in notebooks/: a data folder given relative to the caller's folder is made absolute first."""
    anchor_data_folder = rp.anchor_data_folder
    (tmp_path / "data" / "cifar").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    env = {"CIFAR10_DIR": "data/cifar"}
    params = anchor_data_folder({"data_dir": "./data/cifar", "epochs": 3}, environ=env)
    assert params == {"data_dir": str(tmp_path / "data" / "cifar"), "epochs": 3}
    assert env["CIFAR10_DIR"] == str(tmp_path / "data" / "cifar")
    assert anchor_data_folder({"data_dir": "synthetic"}, environ={}) == {"data_dir": "synthetic"}


def test_the_landing_page_judges_a_comparable_row_by_the_notebooks_rule(monkeypatch):
    from helpers.notebook import results
    from helpers.tools.report import landing
    from helpers.core.stats import spread, verdict_frame
    monkeypatch.setattr(results, "reference_sd", lambda profile, experiments: results.Reference(profile, 0.5, 3, dof=6))
    def row(values, report=79.44):
        s = spread(values)
        return {"experiment": "no augmentation, lr 0.1", "name": "none", "build": s, "measured": s.mean,
                "difference": s.mean - report}
    far, near, one = row([70.0, 70.5, 71.0]), row([79.0, 80.0, 79.5]), row([80.0])
    other = {"name": "none", "build": spread([50.0]), "measured": 50.0, "difference": None}
    judged = landing.verdicts([far, near, one, other], "full")  # `other` does not compare with the report
    ref = results.Reference("full", 0.5, 3, dof=6)
    assert [v.comparison for v in judged] == [results.judge(r["build"], [79.44], ref) for r in (far, near, one)]
    frame = verdict_frame(judged)
    assert list(frame["A"]) == [f"this build {r['build'].format()}" for r in (far, near, one)]
    assert frame["verdict"][0] == "differs (p < 0.001), lower" and frame["verdict"][1].startswith("consistent (p = 0.9")
    assert frame["rule"][2] == "reference sd 0.50, df 6"  # one seed a side: the reference runs' sd stands in
    assert landing.verdicts([other], "full") == []


def test_the_landing_page_shows_the_verdict_table_of_the_rows_that_compare(tmp_path, monkeypatch):
    from helpers.notebook import results
    from helpers.tools.report import landing
    from helpers.core.stats import spread, verdict_frame
    monkeypatch.setattr(results, "reference_sd", lambda profile, experiments: results.Reference(profile, 0.5, 3, dof=6))
    s = spread([70.0, 70.5, 71.0])
    row = {"experiment": "no augmentation, lr 0.1", "name": "none", "runs": ["abc", "abd", "abe"], "notebook": "01",
           "href": "01.html", "epochs": 60, "train_images": 50000, "source": "folder", "report": "79.44%",
           "reference": None, "build": s, "measured": s.mean, "best": 71.0, "seeds": [0, 1, 2], "config": {},
           "difference": s.mean - 79.44}
    monkeypatch.setattr(landing, "experiment_rows", lambda *args, **kwargs: [row])
    soup = BeautifulSoup(landing.write_landing(tmp_path, "full", {}, "data", [], []).read_text(), "html.parser")
    cells = [td.get_text() for td in soup.select("table.verdicts tbody td")]
    assert cells == list(verdict_frame(landing.verdicts([row], "full")).iloc[0])
    assert cells[0] == "no augmentation, lr 0.1" and cells[-1] == "differs (p < 0.001), lower"
    monkeypatch.setattr(landing, "experiment_rows", lambda *args, **kwargs: [{**row, "difference": None}])
    soup = BeautifulSoup(landing.write_landing(tmp_path, "quick", {}, "data", [], []).read_text(), "html.parser")
    assert soup.select("table.summary tbody tr") and not soup.select("table.verdicts")  # nothing compares
