# The README's commands. `make train` and `make test` set up .venv first (safe to re-run).
VENV ?= .venv
PY := $(VENV)/bin/python
# CPU build of torch, installed first where no NVIDIA GPU is present (a bare `torch` pulls a ~3 GB CUDA build).
TORCH_CPU ?= torch==2.13.0
EXTRAS ?= dev,lora,optuna,submitit

.PHONY: setup train test test-fast lint format docs bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then \
		echo "NVIDIA GPU found: torch comes from the package's own requirement"; \
	else \
		$(PY) -m pip install -q "$(TORCH_CPU)"; \
	fi
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	touch $@

train: setup
	$(VENV)/bin/transferlab-train experiment=quickstart $(ARGS)
	@$(VENV)/bin/transferlab-report $$(ls -td outputs/quickstart/runs/*/ | head -1)

# One pytest worker per core (pytest-xdist; tests/conftest.py gives each worker one thread): 2 on the 2-core CI box.
TEST_WORKERS ?= 2

test: setup
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist worksteal --durations=15 $(ARGS)

# The edit loop (< 2 min on 2 cores): everything but the end-to-end runs in subprocesses.
test-fast: setup
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist worksteal -m "not slow" --durations=15 $(ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

docs: setup
	$(VENV)/bin/mkdocs build --strict --site-dir build/site

bench: setup
	$(PY) bench/run_all.py $(ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info
