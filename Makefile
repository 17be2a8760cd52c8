# Two commands set everything up (README): `make reproduce` and `make test`.
# Both create .venv from requirements.lock (exact pins) the first time.

VENV   ?= .venv
PYTHON ?= python3
CORES  ?= all
BIN    := $(VENV)/bin
export DVC_NO_ANALYTICS := 1
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install reproduce test report pull push lint clean

$(VENV)/.installed: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

install: $(VENV)/.installed

## The whole study on the embedded default data, then the HTML report.
reproduce: install
	$(BIN)/snakemake --cores $(CORES)
	$(BIN)/snakemake --report report.html

## Every test (unit tests, the DVC round trip and the smoke workflow).
test: install
	$(BIN)/python -m pytest

report: install
	$(BIN)/snakemake --report report.html

## DVC: save prepared data and checkpoints to the remote / restore them without recomputing.
push: install
	$(BIN)/dvc commit --force
	$(BIN)/dvc push

pull: install
	$(BIN)/dvc pull
	$(BIN)/snakemake --cores 1 --touch models

lint: install
	$(BIN)/snakemake --lint

clean:
	rm -rf results logs .snakemake report.html
