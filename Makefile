# The two commands a fresh machine needs (README):  make demo   and   make test
# Every suite has a time budget (seconds); `timeout` turns an over-budget suite into a failure.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PYTEST := $(BIN)/python -m pytest
PKGS   := -p rxkube.streams -p rxkube.controllers -p rxkube.proxy -p rxkube.fakes

BUDGET_LINT        ?= 120
BUDGET_UNIT        ?= 180
BUDGET_INTEGRATION ?= 300
BUDGET_NOTEBOOKS   ?= 120
BUDGET_CHAOS       ?= 180

.PHONY: test demo install lint unit integration chaos notebooks bench clean browser

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# A strict editable install, redone every run so that mypy and import-linter see new files.
# PYTHONWARNINGS hides setuptools' notice about strict editable installs (a page of text on
# every run, nothing to act on); its other warnings still show.
install: $(BIN)/python
	PYTHONWARNINGS='ignore:Editable installation' $(BIN)/python -m pip install -q -e '.[dev]' --config-settings editable_mode=strict

lint: install
	timeout $(BUDGET_LINT) sh -ec '\
	  $(BIN)/ruff check . ; \
	  $(BIN)/ruff format --check . ; \
	  $(BIN)/mypy $(PKGS) ; \
	  $(BIN)/mypy tests $(wildcard bench/*.py) ; \
	  $(BIN)/lint-imports'

unit: install
	timeout $(BUDGET_UNIT) $(PYTEST) -q tests/unit

# The browser test drives Debian's chromium (never a downloaded browser): installed here when
# missing and we are root, bounded in time, outside the suite's budget; else the test skips.
BUDGET_BROWSER_INSTALL ?= 300
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's chromium for the browser test"; \
	    timeout $(BUDGET_BROWSER_INSTALL) sh -c 'apt-get update -qq && \
	      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null' \
	    || echo "chromium could not be installed: the browser test will be skipped"; \
	  else echo "no chromium and not root: the browser test will be skipped"; fi; }

integration: install browser
	timeout $(BUDGET_INTEGRATION) $(PYTEST) -q tests/integration

# Fault injection and abuse with fixed seeds (issue 10); pytest's "no tests" (exit 5) fails too.
chaos: install
	timeout $(BUDGET_CHAOS) $(PYTEST) -q tests/chaos

# Executes each notebook in a Jupyter kernel (nbclient) and checks its plots are in the output
# and in the committed copy (tests/notebooks/test_notebooks.py says how to refresh those).
notebooks: install
	timeout $(BUDGET_NOTEBOOKS) $(PYTEST) -q -p no:trio -W "ignore:Unknown config option:pytest.PytestConfigWarning" tests/notebooks

test: lint unit integration chaos notebooks

demo: install
	$(BIN)/rxkube demo

clean:
	rm -rf $(VENV) build *.egg-info
