# coopfed: make install | run | test | lint | proto | bench
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TOOLS := .tools/bin
OPA_VERSION := v1.22.0
OPA := $(TOOLS)/opa
REGAL_VERSION := v0.42.0
REGAL := $(TOOLS)/regal
export PATH := $(abspath $(TOOLS)):$(abspath $(VENV))/bin:$(PATH)

.PHONY: browser postgresql install run test lint typecheck imports fmt proto proto-check bench clean regal policy-check

install: $(VENV)/.installed $(OPA) $(REGAL) browser postgresql

# Debian's headless Chromium and its driver, for the portal's browser tests (they skip without them).
# Installed as root where apt is (a fresh CI machine); otherwise left to the machine's owner.
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium chromium-driver; \
	else echo "chromium not installed (needs root and apt): the portal's browser tests will skip"; fi

# Debian's PostgreSQL server: the storage tests start a throwaway one (tests/pgserver.py).
postgresql:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends postgresql; \
	else echo "PostgreSQL not installed (needs root and apt): the PostgreSQL storage tests will skip"; fi

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

$(OPA): scripts/go-tool.sh Makefile
	scripts/go-tool.sh $(TOOLS) opa github.com/open-policy-agent/opa $(OPA_VERSION)

# The Regal linter (about a minute to build); `coopfed policy check` runs it where installed.
regal: $(REGAL)

$(REGAL): scripts/go-tool.sh Makefile
	scripts/go-tool.sh $(TOOLS) regal github.com/open-policy-agent/regal $(REGAL_VERSION)

# What a technical board runs on a change to policies/ (see policies/README.md).
policy-check: install $(REGAL)
	$(VENV)/bin/coopfed policy check --require-regal
	$(VENV)/bin/coopfed policy test

run: install
	$(VENV)/bin/coopfed demo

test: install lint
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(OPA) fmt --diff --fail policies
	$(OPA) check --strict policies
	$(MAKE) imports

# The import contracts of [tool.importlinter] (dependencies point one way), read through the tree
# of links `make typecheck` lays out: the editable install hides the package's folders from static tools.
imports: typecheck
	PYTHONPATH=build/typecheck $(VENV)/bin/lint-imports --no-cache --no-logo

# mypy on the whole package, at the strictness set in pyproject.toml's [tool.mypy].
typecheck: $(VENV)/.installed
	$(PY) scripts/typecheck.py

fmt: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .
	$(OPA) fmt --write policies

# Stubs, typed stubs and a descriptor set with the comments (for grpcurl and ghz), written under $(1).
protoc = $(PY) -m grpc_tools.protoc -I proto --python_out=$(1) --grpc_python_out=$(1) \
	--mypy_out=$(1) --mypy_grpc_out=$(1) --include_imports --include_source_info \
	--descriptor_set_out=$(1)/coopfed.protoset $(sort $(wildcard proto/coopfed/v1/*.proto))

proto: $(VENV)/.installed
	$(call protoc,proto)

# Fails when a committed generated file differs from what `make proto` would write.
proto-check: $(VENV)/.installed
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && mkdir -p "$$tmp/new/coopfed/v1" && \
	$(call protoc,$$tmp/new) >/dev/null && \
	(cd "$$tmp/new" && find coopfed* -type f | sort) > "$$tmp/generated" && \
	(cd proto && find coopfed* -type f \( -name '*_pb2*.py' -o -name '*_pb2*.pyi' -o -name '*.protoset' \) | sort) > "$$tmp/committed" && \
	diff "$$tmp/generated" "$$tmp/committed" && \
	for f in $$(cat "$$tmp/generated"); do \
		cmp -s "$$tmp/new/$$f" "proto/$$f" || { echo "proto/$$f is stale: run make proto"; exit 1; }; \
	done && echo "generated files in proto/ are up to date"

bench: install
	for b in ingest storage state policy grants federation governance forecast policy_diff ledger portal hostile; do \
		$(PY) bench/$$b.py || exit 1; done

clean:
	rm -rf $(VENV) .tools .pytest_cache
