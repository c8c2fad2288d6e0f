# visionyard: `make demo` trains a real model end to end; `make test` runs the test suite.
SHELL := /bin/bash
UV = $$(command -v uv || echo python3 -m uv)

.PHONY: setup demo test test-quick proto bench

setup:
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install uv
	@$(UV) sync

demo: setup
	$(UV) run python -m runner.cli.demo

test: setup
	$(UV) run pytest -n 2

test-quick: setup
	$(UV) run pytest -m "not slow"

proto: setup
	$(UV) run python -m protos.generate

bench: setup
	$(UV) run python bench/bench_envs.py
	$(UV) run python bench/bench_runner.py
	$(UV) run python bench/bench_parsers.py
	$(UV) run python bench/bench_datasets.py
	$(UV) run python bench/bench_ultralytics.py
	$(UV) run python bench/bench_transformers.py
	$(UV) run python bench/bench_transformers_tasks.py
	$(UV) run python bench/bench_cli.py
	$(UV) run python bench/bench_link_loops.py
	$(UV) run python bench/bench_predict.py
	$(UV) run python bench/bench_predict_batch.py
	$(UV) run python bench/bench_export.py
	$(UV) run python bench/bench_sweeps.py
