"""`make report`: execute the numbered notebooks, export them to HTML pages and write the landing page.

Parts, lowest first (no import runs upward): plan (parameters, config and data checks) → execution (papermill,
reuse of executed notebooks) → export (HTML pages) → experiments (the study's experiments: report, full-scale
reference, this build) → landing (report/index.html) → build (the pipeline and its command line);
readme renders README.md's results table. `python -m helpers.report` runs build.main.
"""
from .plan import (NOTEBOOK_NAME, ReportError, check_config, check_data, coerce, declared_parameters, find_notebooks,
                   load_params_file, parse_sets, plan_parameters)
from .execution import (Executed, execute, input_key, read_runs_log, runs_state)
from .export import (IMAGE_TYPES, REMOVE_CELL_TAG, REMOVE_INPUT_TAG, REMOVE_OUTPUT_TAG, TEMPLATES, clean_outputs,
                     clean_stream, export_pages, make_exporter, notebook_title)
from .experiments import RECIPE_LABELS, experiment_rows, report_figure, row_label
from .landing import FIGURE_TAG, environment, key_figures, write_landing
from .build import build_report, main
