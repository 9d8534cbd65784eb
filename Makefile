# Two commands: `make report` (set up, then run the study) and `make test` (set up, then test).
VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
PROFILE ?= auto
export PROFILE

.PHONY: setup test report clean-report

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e ".[notebooks,test]"
	touch $@

setup: $(VENV)/.installed   ## create .venv and install the project with its extras

test: setup                 ## run unit tests, then nbval over the notebooks (smoke profile)
	$(PY) -m pytest

report: setup               ## run the study (PROFILE=auto|smoke|quick|full)
	$(PY) -m helpers.cli train --profile $(PROFILE)
