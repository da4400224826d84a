# The developer interface. Every target creates .venv when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# What `test` and `integration_tests` run: a folder, a file or a node id (`make test TEST_FILE=...`).
TEST_FILE ?= tests

.PHONY: demo test tests integration_tests test_unit test_train lint format venv clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip>=25.1"
	# The CPU wheel of torch (an open range would pull a multi-GB CUDA build).
	$(BIN)/python -m pip install -q "torch==2.13.0"
	$(BIN)/python -m pip install -q -e ".[train,postgres,sqlite-index]" --group dev
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m fspo_train.demo $(DEMO_ARGS)

# Every layer (unit tests without sockets, integration, train): what CI runs.
integration_tests: TEST_FILE = tests/integration_tests
test tests integration_tests: $(STAMP)
	$(BIN)/python -m pytest $(TEST_FILE) $(PYTEST_ARGS)

test_unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit_tests $(PYTEST_ARGS)

test_train: $(STAMP)
	$(BIN)/python -m pytest tests/train $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --diff .
	$(BIN)/mypy langchain_fspo fspo_train tests bench examples

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) build dist .mypy_cache .ruff_cache
