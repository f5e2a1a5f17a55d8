# flask_imagekit: `make demo` runs the example, `make test` runs every check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-test

.PHONY: test demo bench lint typecheck clean test-browser screenshots fuzz

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check flask_imagekit tests bench example_app fuzz
	$(BIN)/ruff format --check flask_imagekit tests bench example_app fuzz
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy --strict flask_imagekit

test: lint typecheck
	$(BIN)/pytest

DEMO_ARGS ?=
demo: $(STAMP)
	$(BIN)/python -m example_app.demo $(DEMO_ARGS)

test-browser: $(STAMP)
	$(BIN)/pytest -m browser tests/browser

# Refresh the README's screenshots of the example gallery (docs/screenshots/).
screenshots: $(STAMP)
	UPDATE_SCREENSHOTS=1 $(BIN)/pytest -m browser tests/browser/test_pictures.py

BENCH_ARGS ?=
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python -m bench $(BENCH_ARGS)

FUZZ_SECONDS ?= 300
fuzz: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[fuzz]' || echo "atheris is not installable here: using the built-in engine"
	$(BIN)/python fuzz/fuzz_pipeline.py --seconds $(FUZZ_SECONDS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache *.egg-info
