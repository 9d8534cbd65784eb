"""The three layers of helpers: imports point down only, the core loads no plotting or notebook library, and
docs/development.md shows the import graph as the code has it."""
import subprocess
import sys

from helpers.tools import layers


def test_no_module_imports_a_higher_layer():
    assert layers.violations() == []


def test_the_check_names_an_upward_import():
    edges = {"helpers.core.runs": {"helpers.notebook.plots"}, "helpers.notebook.plots": {"helpers.core.runs"}}
    assert layers.violations(edges) == [
        "helpers.core.runs imports helpers.notebook.plots (layer notebook is above layer core)"]


def test_every_module_belongs_to_a_layer():
    assert [m for m in layers.graph() if m != "helpers" and layers.layer_of(m) is None] == []


def test_importing_the_core_loads_no_matplotlib_ipython_or_styler():
    code = ("import sys, importlib, pkgutil, helpers.core as c\n"
            "for m in pkgutil.iter_modules(c.__path__): importlib.import_module('helpers.core.' + m.name)\n"
            "print(sorted(k for k in ('matplotlib', 'IPython', 'pandas.io.formats.style', 'ipywidgets') "
            "if k in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_notebooks_facade_still_gives_every_name():
    import helpers as h
    assert callable(h.train_many) and callable(h.plot_curves) and callable(h.cam_grid)


def test_docs_show_the_graph_the_code_has():
    text = (layers.PACKAGE.parent / "docs" / "development.md").read_text()
    block = text[text.index(layers.START) + len(layers.START):text.index(layers.END)].strip()
    assert block == layers.mermaid(), "run `python -m helpers.tools.layers --write`"
