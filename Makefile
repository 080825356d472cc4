# `make run` sets everything up on a fresh Debian/Ubuntu machine and starts the GUI.
# `make test` sets up the same plus test-only packages and runs the whole suite.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
DEPS   := packaging/deps

.PHONY: run test bench lint typecheck setup setup-test install-desktop uninstall-desktop \
        icons man deb dist clean

$(VENV)/.apt-run: $(DEPS)/apt-run.txt
	$(DEPS)/install-debian-deps $(DEPS)/apt-run.txt
	@mkdir -p $(VENV) && touch $@

$(VENV)/.apt-test: $(DEPS)/apt-run.txt $(DEPS)/apt-test.txt
	$(DEPS)/install-debian-deps $(DEPS)/apt-run.txt $(DEPS)/apt-test.txt
	@mkdir -p $(VENV) && touch $@

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.pip-run: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e .
	@touch $@

$(VENV)/.pip-test: pyproject.toml $(VENV)/.apt-test | $(PY)
	$(PY) -m pip install -q -e '.[test]'
	@touch $@

setup: $(VENV)/.apt-run $(VENV)/.pip-run

setup-test: setup $(VENV)/.apt-test $(VENV)/.pip-test

run: setup
	$(VENV)/bin/livesmith

test: setup-test
	$(PY) -m pytest

bench: setup-test
	$(PY) -m pytest tests/benchmarks -m benchmark -s -p no:cacheprovider

lint: setup-test
	$(VENV)/bin/ruff check app ui tests
	$(VENV)/bin/ruff format --check app ui tests
	$(VENV)/bin/mypy

# Desktop integration and packages. Build output goes to build/ and dist/, never committed.
icons:
	$(PYTHON) packaging/desktop-integration render-icons build/icons

man: setup
	$(PY) packaging/make-manpage -o build/man/livesmith.1

# The menu entry, icons and AppStream file for the current user, starting this checkout's app.
install-desktop: setup
	$(PYTHON) packaging/desktop-integration install --exec "$(abspath $(VENV))/bin/livesmith"

uninstall-desktop:
	$(PYTHON) packaging/desktop-integration uninstall

# build/deb/livesmith_<version>_all.deb (build dependencies: packaging/debian/control)
deb:
	packaging/build-deb build/deb

# dist/livesmith-<version>.tar.gz and the wheel
dist: setup-test
	$(PY) -m build --outdir dist

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
