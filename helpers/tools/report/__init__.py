"""`make report`: build (parameters, checks, command line) → notebooks (papermill, reuse, used runs, HTML pages) →
experiments (the study's rows) → landing (report/index.html); readme and course render README.md and docs pages."""
from helpers.tools.report.notebooks import Executed, ReportError, clean_outputs, used_runs
from helpers.tools.report.experiments import experiment_rows, report_figure
from helpers.tools.report.build import (anchor_data_folder, build_report, check_data, coerce, find_notebooks,
                                        load_params_file, main, parse_sets, plan_parameters)
