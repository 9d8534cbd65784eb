"""helpers: the code behind the notebooks, in three layers that import downwards only (docs/development.md):
helpers.core (training; no matplotlib, no IPython), helpers.notebook (figures, tables, verdicts, CAM), helpers.tools.
Notebooks `import helpers as h` and call `h.<name>`, helpers.notebook's names, loaded on first use."""
import importlib


def __getattr__(name):
    return getattr(importlib.import_module("helpers.notebook"), name)


def __dir__():
    return sorted(importlib.import_module("helpers.notebook").__all__)
