# The README's two commands: `make demo` and `make test`. Both install what they need first.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test test-unit install lint clean image image-lock

# The runtime alone (what `make demo` needs: about a minute from a fresh clone); the test toolchain (pytest,
# ruff, mypy, moto, hypothesis, import-linter) is added by `make install`, which `make test` runs through
# scripts/ci/setup.sh.
$(BIN)/forescale: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q -e .
	@touch $@

$(VENV)/.dev: $(BIN)/forescale
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

install: $(VENV)/.dev

demo: $(BIN)/forescale
	$(BIN)/forescale demo

test:
	bash scripts/ci/test.sh

test-unit: install   # the fast half: tests/unit only, no servers to install (the whole suite: make test)
	$(BIN)/pytest tests/unit -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# forescale's Docker image without a registry: Debian base via debootstrap, host-built wheelhouse,
# legacy `docker build` with no network (scripts/image/build.sh; docs/operations.md "Deploy").
image: install
	bash scripts/image/build.sh

image-lock: install   # re-pin the image's Python packages after changing dependencies
	bash scripts/image/lock.sh

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build/image
