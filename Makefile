# The README's commands. The Dockerfile runs the same install steps.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# Extra pip arguments for torch only (the Dockerfile points this at the CPU wheel index).
TORCH_PIP_ARGS ?=
EXTRAS ?= dev,postgres,qdrant-edge,langchain,langgraph,llamaindex,mcp
CHROMIUM ?= /usr/bin/chromium
HOST ?= 127.0.0.1
PORT ?= 8080
DATA ?= ./data
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install install-runtime serve test lint bench bench-large soak screenshot chromium clean

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
	$(MAKE) install EXTRAS=postgres,qdrant-edge

serve: install
	$(VENV)/bin/hivemem serve --data $(DATA) --host $(HOST) --port $(PORT)

# The console's browser tests drive Debian's chromium: Playwright's own browser
# download cannot work here. Install it when absent (CI runs as root); if that fails the
# browser tests fail, saying so.
chromium:
	@test -x $(CHROMIUM) || command -v chromium >/dev/null 2>&1 || \
	  (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium) || \
	  echo "make: could not install chromium; the console's browser tests will fail"

test: install chromium
	$(PY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

# Regenerate the README's console screenshot from a run of the browser tests.
screenshot: install chromium
	$(PY) -m pytest -q -p no:cacheprovider tests/console
	cp build/console-screenshots/browse.png docs/console.png

lint: install
	$(VENV)/bin/ruff check hivemem/__init__.py memory api adapters tests bench examples
	$(VENV)/bin/ruff format --check hivemem/__init__.py memory api adapters tests bench examples
	$(VENV)/bin/mypy --strict -p hivemem

bench: install
	$(PY) -m bench.run $(BENCH_ARGS)

# The 1,000,000-item approximate-search point (tens of minutes on 2 cores).
bench-large: install
	$(PY) -m bench.run --only ann --large $(BENCH_ARGS)

# The fault battery at full counts (SIGKILLs, CAS races, index damage, guessing, a
# stalled watcher, two servers on one directory, overload, property test, schemathesis);
# writes the Reliability section of bench/RESULTS.md. SOAK_ARGS=--quick: reduced counts.
soak: install
	$(PY) -m bench.soak $(SOAK_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
