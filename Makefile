# coopfed: make install | run | test | lint | proto | bench
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TOOLS := .tools/bin
OPA_VERSION := v1.22.0
OPA := $(TOOLS)/opa
export PATH := $(abspath $(TOOLS)):$(abspath $(VENV))/bin:$(PATH)

.PHONY: install run test lint fmt proto proto-check bench clean

install: $(VENV)/.installed $(OPA)

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

$(OPA): scripts/go-tool.sh Makefile
	scripts/go-tool.sh $(TOOLS) opa github.com/open-policy-agent/opa $(OPA_VERSION)

run: install
	$(VENV)/bin/coopfed demo

test: install lint
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(OPA) fmt --diff --fail policies
	$(OPA) check --strict policies

fmt: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .
	$(OPA) fmt --write policies

proto: $(VENV)/.installed
	$(PY) -m grpc_tools.protoc -I proto --python_out=proto --grpc_python_out=proto \
		--mypy_out=proto proto/coopfed/v1/*.proto

bench: install
	$(PY) bench/ingest.py

clean:
	rm -rf $(VENV) .tools .pytest_cache
