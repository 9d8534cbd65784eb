"""JupyterLab in a real browser: `make lab`'s command serves a copy of the notebooks, and headless Chromium, driven by
Playwright, runs notebook 04 in the smoke profile, moves two controls of its CAM explorer, and runs notebook 01.

The file sorts after test_report.py on purpose: that module's smoke report trains every smoke run into the session's
run store, so the kernels here load those runs instead of training them again (they train whatever is missing).
A failing test saves a screenshot in its tmp_path and prints where.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--no-first-run"]
TOKEN = "lab-test-token"
NOTEBOOK_MINUTES = 10  # the longest wait for one notebook, should its runs have to be trained here

try:
    import playwright.sync_api as pw
except ImportError:  # pragma: no cover - the test extra installs it
    pw = None

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium "
                                                     "(apt-get install chromium; .ci/run installs it)"),
    pytest.mark.skipif(pw is None, reason="needs the playwright package (pip install -e '.[test]')"),
]

# Throw-away JupyterLab settings: every cell kept in the page (no windowing), no news or update checks.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                        "checkForUpdates": False},
}


def busy_port() -> socket.socket:
    """Return a socket listening on a port the system picked: JupyterLab is asked for that port, which is busy."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s


def wait_for_server(proc, log: Path, pattern: str, timeout: float = 120) -> re.Match:
    """Wait until the server's log matches `pattern` and it answers; return the match."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"JupyterLab exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        m = re.search(pattern, log.read_text())
        if m:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{m.group('port')}/api/status?token={TOKEN}",
                                            timeout=5) as r:
                    if r.status == 200:
                        return m
            except OSError:
                pass
        time.sleep(0.5)
    pytest.fail(f"JupyterLab did not answer within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """Start `python -m helpers.tools.lab` (what `make lab` runs) on a busy port; yield (base URL, notebooks copy, log)."""
    home = tmp_path_factory.mktemp("lab")
    notebooks = home / "notebooks"
    notebooks.mkdir()
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        shutil.copy(nb, notebooks / nb.name)
    for name, settings in LAB_SETTINGS.items():
        path = home / "config" / "lab" / "user-settings" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings))
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(home / "config"), "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
           "JUPYTER_DATA_DIR": str(home / "data"), "PROFILE": "smoke",
           # one torch thread: with the browser and the server on the same small CPU, two threads made
           # notebook 04 run 3.2 min instead of 0.9 min (2 cores, smoke profile, runs already stored)
           "OMP_NUM_THREADS": "1"}
    taken = busy_port()
    port = taken.getsockname()[1]
    log = home / "lab.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "helpers.tools.lab", "--port", str(port), "--notebooks", str(notebooks),
             "--no-browser", f"--IdentityProvider.token={TOKEN}", "--ServerApp.ip=127.0.0.1"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        m = wait_for_server(proc, log, rf"port {port} is busy; using port (?P<port>\d+)")
        text = log.read_text()
        assert int(m.group("port")) != port
        assert "make lab: profile: smoke" in text and f"make lab: kernel: {sys.executable}" in text
        yield f"http://127.0.0.1:{m.group('port')}", notebooks, log
    finally:
        taken.close()
        os.killpg(proc.pid, signal.SIGTERM)  # the server and its kernels
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="module")
def browser():
    """Yield Debian's Chromium, headless, driven by Playwright (no browser of Playwright's own)."""
    with pw.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    """Yield a fresh page in its own browser context."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    yield context.new_page()
    context.close()


@contextmanager
def screenshot_on_failure(page, folder: Path, name: str):
    """Run the block; if it fails, save a full-page screenshot in `folder` and print where, then fail."""
    try:
        yield
    except BaseException:
        shot = folder / f"{name}.png"
        try:
            page.screenshot(path=str(shot), full_page=True)
            print(f"screenshot of the failing page: {shot}")
        except pw.Error as e:
            print(f"no screenshot ({e})")
        raise


def open_notebook(page, base: str, name: str):
    """Open a notebook in JupyterLab, in a workspace of its own (nothing else open), and wait for its kernel."""
    page.goto(f"{base}/lab/workspaces/{Path(name).stem}/tree/{name}?reset&token={TOKEN}")
    page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=120_000)
    page.locator(".jp-StatusBar-TextItem", has_text=re.compile(r"\| Idle$")).wait_for(timeout=120_000)


def run_all_cells(page):
    """Run > Run All Cells, from JupyterLab's menu bar."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()


def wait_until_done(page, minutes: float = NOTEBOOK_MINUTES):
    """Wait until a code cell has run, none is queued or running ([*]), and the kernel is idle."""
    page.wait_for_function(
        """() => {
            const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].map(p => p.textContent);
            const status = document.querySelector('.jp-Notebook-ExecutionIndicator');
            return prompts.some(t => /\\[\\d+\\]/.test(t)) && !prompts.some(t => t.includes('*'))
                && status && status.dataset.status === 'idle';
        }""", timeout=minutes * 60_000, polling=1000)


def save_and_read(page, notebooks: Path, name: str) -> nbformat.NotebookNode:
    """Save the notebook from the browser (Ctrl+S) and return what JupyterLab wrote."""
    path = notebooks / name
    before = path.stat().st_mtime_ns
    page.locator(".jp-NotebookPanel-toolbar [data-command='docmanager:save']").click()
    deadline = time.monotonic() + 60
    while path.stat().st_mtime_ns == before and time.monotonic() < deadline:
        time.sleep(0.5)
    assert path.stat().st_mtime_ns != before, f"{name} was not saved"
    return nbformat.read(path, as_version=4)


def assert_ran_without_errors(page, nb: nbformat.NotebookNode, name: str):
    """Every code cell ran, none has an error output, and no traceback shows in the page."""
    code = [c for c in nb.cells if c.cell_type == "code"]
    not_run = [i for i, c in enumerate(code) if c.execution_count is None]
    errors = [f"{o.ename}: {o.evalue}" for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, f"{name}: error outputs {errors}"
    assert not not_run, f"{name}: code cells {not_run} did not run"
    shown = page.locator(".jp-OutputArea-output").all_inner_texts()
    assert not [t for t in shown if "Traceback (most recent call last)" in t], f"{name}: a traceback is shown"


def explorer_image(page) -> str:
    """Return the src of the CAM explorer's figure (a data: URL of the PNG)."""
    img = page.locator(".widget-vbox .widget-output img").first
    img.wait_for(timeout=60_000)
    return img.get_attribute("src")


def change_and_wait_for_redraw(page, control: str, value: str) -> str:
    """Pick `value` in the explorer's `control` dropdown; wait until the figure is redrawn; return its new src."""
    before = explorer_image(page)
    page.locator(".widget-vbox .widget-dropdown", has=page.locator("label", has_text=re.compile(rf"^{control}$"))) \
        .locator("select").select_option(value)
    try:
        page.wait_for_function(
            """old => { const i = document.querySelector('.widget-vbox .widget-output img');
                        return i && i.src && i.src !== old; }""", arg=before, timeout=60_000, polling=500)
    except pw.TimeoutError:
        pytest.fail(f"setting the explorer's {control!r} to {value!r} did not redraw its figure within 60 s")
    after = explorer_image(page)
    assert after.startswith("data:image/png") and after != before
    return after


def open_and_run_all(page, base: str, name: str):
    """Open notebook `name` in JupyterLab, run all its cells and wait until the kernel is idle."""
    open_notebook(page, base, name)
    run_all_cells(page)
    wait_until_done(page)


def test_notebook_04_runs_in_jupyterlab_and_its_cam_explorer_redraws(lab, page, tmp_path):
    base, notebooks, _ = lab
    name = "04_cam.ipynb"
    with screenshot_on_failure(page, tmp_path, "04_cam"):
        open_and_run_all(page, base, name)
        first = explorer_image(page)
        assert first.startswith("data:image/png")
        layer3 = change_and_wait_for_redraw(page, "layer", "layer3")
        cat = change_and_wait_for_redraw(page, "target", "cat")
        assert len({first, layer3, cat}) == 3
        wait_until_done(page)
        assert_ran_without_errors(page, save_and_read(page, notebooks, name), name)


def test_notebook_01_runs_to_the_end_in_jupyterlab(lab, page, tmp_path):
    base, notebooks, _ = lab
    name = "01_baseline.ipynb"
    with screenshot_on_failure(page, tmp_path, "01_baseline"):
        open_and_run_all(page, base, name)
        assert_ran_without_errors(page, save_and_read(page, notebooks, name), name)
