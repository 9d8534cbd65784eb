"""helpers: the code behind the notebooks, in three layers that import downwards only (docs/development.md).

- helpers.core: configs, data, recipes, the model, training, the run store, statistics (no matplotlib, no IPython);
- helpers.notebook: each notebook's figures, tables and verdicts, and CAM (helpers.notebook.cam);
- helpers.tools: the command line, the benchmarks, the report builder and the reference folder.

Notebooks `import helpers as h` and call `h.<name>`: the names of helpers.notebook, loaded on first use, so that
`import helpers.core` (a training job) loads none of the notebook layer's libraries.
"""


def __getattr__(name):
    import importlib
    notebook = importlib.import_module("helpers.notebook")
    try:
        return getattr(notebook, name)
    except AttributeError:
        raise AttributeError(f"module 'helpers' has no attribute {name!r}") from None


def __dir__():
    import importlib
    return sorted(importlib.import_module("helpers.notebook").__all__)
