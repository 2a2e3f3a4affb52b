# The README's commands. The Dockerfile runs the same install steps.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# Extra pip arguments for torch only (the Dockerfile points this at the CPU wheel index).
TORCH_PIP_ARGS ?=
EXTRAS ?= dev,postgres,langchain,langgraph,llamaindex,mcp
HOST ?= 127.0.0.1
PORT ?= 8080
DATA ?= ./data
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install install-runtime serve test lint bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# CPU torch first and pinned: any other torch requirement pulls CUDA packages.
	$(PIP) install -q $(TORCH_PIP_ARGS) torch==2.13.0
	$(PIP) install -q -e ".[$(EXTRAS)]"
	touch $@

install: $(VENV)/.installed

# Runtime only (what the container needs): no test or framework extras.
install-runtime:
	$(MAKE) install EXTRAS=postgres

serve: install
	$(VENV)/bin/hivemem serve --data $(DATA) --host $(HOST) --port $(PORT)

test: install
	$(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check hivemem/__init__.py memory api adapters tests bench
	$(VENV)/bin/ruff format --check hivemem/__init__.py memory api adapters tests bench
	$(VENV)/bin/mypy --strict -p hivemem

bench: install
	$(PY) -m bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
