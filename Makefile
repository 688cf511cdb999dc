# Vigil: two commands matter. `make demo` runs the main job on embedded defaults (writing
# where the defaults point, so every README command works next),
# `make test` sets up and runs the test suite.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup lock demo test test-slow test-all test-tools lint format bench load stress clean eda tracker-images handbook-results feedback-results one-pager reports demo-video
.PHONY: setup-providers lock-providers bento

# What the targets below set up first: the .venv. `make demo SETUP=` (or test) runs with the
# environment already on PATH instead (the fresh-clone test in tests/e2e reuses the venv).
SETUP ?= $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -c requirements.lock -e '.[serve,train,ops,dev,pipelines]'
	touch $(STAMP)

setup: $(STAMP) ## make .venv with everything installed, versions from requirements.lock

# The inference-provider environment (Triton server, BentoML, OpenVINO + NNCF): pins that
# cannot share .venv (numpy<2 for nvidia-pytriton, BentoML's OpenTelemetry), own lock file.
PROVIDERS_VENV := .venv-providers
PROVIDERS_STAMP := $(PROVIDERS_VENV)/.installed
PROVIDERS ?= $(PROVIDERS_STAMP)

$(PROVIDERS_STAMP): pyproject.toml requirements-providers.lock
	test -x $(PROVIDERS_VENV)/bin/python || $(PYTHON) -m venv $(PROVIDERS_VENV)
	$(PROVIDERS_VENV)/bin/pip install --quiet --upgrade pip
	$(PROVIDERS_VENV)/bin/pip install --quiet -r requirements-providers.lock
	$(PROVIDERS_VENV)/bin/pip install --quiet --no-deps -e .
	touch $(PROVIDERS_STAMP)

setup-providers: $(PROVIDERS_STAMP) ## make .venv-providers from requirements-providers.lock

lock-providers: ## rewrite requirements-providers.lock (after changing requirements-providers.in)
	rm -rf .venv-providers-lock && $(PYTHON) -m venv .venv-providers-lock
	.venv-providers-lock/bin/pip install --quiet -r requirements-providers.in -e .
	{ sed -n '1,3p' requirements-providers.lock; \
	  .venv-providers-lock/bin/pip freeze --exclude-editable | grep -v '^-e'; } > requirements-providers.lock.new
	mv requirements-providers.lock.new requirements-providers.lock && rm -rf .venv-providers-lock

lock: ## rewrite requirements.lock from the installed environment (after changing pyproject.toml)
	$(BIN)/python scripts/lock.py

demo: $(SETUP) ## generate -> validate -> features -> train -> score, embedded defaults
	PATH=$(CURDIR)/$(BIN):$$PATH bash scripts/demo.sh

bento: $(PROVIDERS) ## bentoml build of deploy/bento (service + Vigil wheel); Dockerfile in the bento's env/docker/
	bash scripts/build_bento.sh build/bento

test-tools: ## Prometheus, promtool, amtool: installed under CI=true (apt-get), else a note
	bash scripts/test_tools.sh

test: $(SETUP) $(PROVIDERS) test-tools ## unit + integration tests (integration skips locally when a service is down; fails in CI)
	$(BIN)/python -m pytest -m "not slow" -q --ignore=tests/providers
	$(PROVIDERS_VENV)/bin/python -m pytest -q -p no:cacheprovider tests/providers

test-slow: $(SETUP) test-tools ## only the slow tests (real SIGKILL, real retrain, full-size simulation, fresh-clone README path)
	$(BIN)/python -m pytest -m slow -q --ignore=tests/providers

test-all: $(SETUP) test-tools ## every test, slow ones included
	$(BIN)/python -m pytest -q --ignore=tests/providers

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/flake8 src tests benchmarks
	$(BIN)/mypy src

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# `make bench` runs each benchmarks/bench_*.py with BENCH_ARGS_<script> (none unless set here)
# and stops at the first failure. The tree-against-itself A/Bs get short settings (their own
# defaults take ~15 min each; docs/benchmarks.md's quiet-window commands pass their own), and
# bench_pg_trees measures this tree alone. Left out: scripts that measure what you name or
# build (models to compare, the DVC pipeline's model, a 50M-row feature file, `make stress`'s
# world as root).
BENCH_ARGS_bench_api_ab := --pairs 2 --duration 5
BENCH_ARGS_bench_api_instructions := --warmup-batches 10 --batches 20
BENCH_ARGS_bench_pg_trees := this=.
BENCH_SKIP := bench_model_cost bench_reason_codes bench_train_stream bench_surge
BENCH_SCRIPTS := $(filter-out $(BENCH_SKIP:%=benchmarks/%.py),$(sort $(wildcard benchmarks/bench_*.py)))

define bench_script
	@echo "== $(1)"
	$(BIN)/python $(1) $(BENCH_ARGS_$(basename $(notdir $(1))))

endef

bench: $(STAMP) ## run the benchmarks (short A/Bs; those needing an input left out); each prints its figure last
	$(foreach script,$(BENCH_SCRIPTS),$(call bench_script,$(script)))

HOST ?= http://127.0.0.1:8000
USERS ?= 100
DURATION ?= 60s
load: $(STAMP) ## Locust against a running `vigil serve` (HOST=...): 100 users x 10 req/s = 1,000 req/s
	$(BIN)/locust -f locustfile.py --headless --only-summary -u $(USERS) -r $(USERS) \
		-t $(DURATION) --host $(HOST)

STRESS_PLAN ?= full
stress: $(STAMP) ## stress campaign (root, ~20 min): 1 CPU / 2 GB cgroups, Locust SLO, 10x surge, faults -> docs/STRESS_REPORT.md
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/vigil stress run --plan $(STRESS_PLAN) --workdir data/stress \
		--report docs/STRESS_REPORT.md

HANDBOOK ?= ../shared/datasets/handbook/transactions_2018-04-01_2018-08-14.parquet
eda: $(STAMP) ## EDA report of the handbook's data -> docs/eda/ (HANDBOOK=... for other data)
	$(BIN)/vigil eda --input $(HANDBOOK) --output docs/eda

handbook-results: $(STAMP) ## 3 experiments on the handbook's test week -> docs/results/handbook_experiments.json
	$(BIN)/vigil experiments run lightgbm mlp_small logistic lightgbm_no_extra --data $(HANDBOOK) \
		--set train.runs_dir=data/handbook-runs --set tracking.mlflow_uri=file:data/handbook-mlruns
	$(BIN)/vigil experiments --runs-dir data/handbook-runs --results docs/results/handbook_experiments.json

FEEDBACK_WORLD ?= data/feedback-world/raw
feedback-results: $(STAMP) ## with/without analysts' feedback: handbook week (LightGBM 5 seeds, look-back, hourly; logistic; MLP default and MLP + LightGBM ensemble 5 seeds, look-back; MLP default retrained, 5 seeds; MLP unweighted, 5 seeds) + a simulated world (logistic, LightGBM 1 seed; look-back: MLP default and LightGBM 5 seeds, logistic) -> docs/results/feedback_*.json
	nice -n 10 $(BIN)/vigil evaluate lightgbm --feedback --lookback-days 0 --seeds 0-4 --data $(HANDBOOK) \
		--results docs/results/feedback_handbook_lightgbm.json
	nice -n 10 $(BIN)/vigil evaluate logistic --feedback --lookback-days 0 --seeds 0, --data $(HANDBOOK) \
		--results docs/results/feedback_handbook_logistic.json
	nice -n 10 $(BIN)/vigil evaluate lightgbm --feedback --no-retrain --lookback-days 7 --seeds 0-4 \
		--data $(HANDBOOK) --results docs/results/feedback_handbook_lightgbm_lookback.json
	nice -n 10 $(BIN)/vigil evaluate lightgbm --feedback --no-retrain --lookback-days 0 --every-hours 1 --seeds 0, \
		--data $(HANDBOOK) --results docs/results/feedback_handbook_lightgbm_hourly.json
	nice -n 10 $(BIN)/vigil evaluate mlp_small --feedback --no-retrain --lookback-days 7 --seeds 0-4 \
		--data $(HANDBOOK) --results docs/results/feedback_handbook_mlp_small_lookback_log1p.json
	nice -n 10 $(BIN)/vigil evaluate mlp_small --feedback --lookback-days 7 --seeds 0-4 \
		--data $(HANDBOOK) --results docs/results/feedback_handbook_mlp_small_lookback_retrained.json
	nice -n 10 $(BIN)/vigil evaluate mlp_no_weighting --feedback --no-retrain --lookback-days 7 --seeds 0-4 \
		--data $(HANDBOOK) --results docs/results/feedback_handbook_mlp_no_weighting_lookback.json
	nice -n 10 $(BIN)/vigil evaluate ensemble_mlp_lightgbm --feedback --no-retrain --lookback-days 7 --seeds 0-4 \
		--data $(HANDBOOK) --results docs/results/feedback_handbook_ensemble_mlp_lightgbm_lookback_log1p.json
	$(BIN)/vigil generate --out $(FEEDBACK_WORLD) --set data.seed=1 --overwrite --no-progress
	nice -n 10 $(BIN)/vigil evaluate logistic lightgbm --feedback --lookback-days 0 --seeds 0, --data $(FEEDBACK_WORLD) \
		--results docs/results/feedback_simulated.json
	nice -n 10 $(BIN)/vigil evaluate mlp_small --feedback --no-retrain --lookback-days 7 --seeds 0-4 \
		--data $(FEEDBACK_WORLD) --results docs/results/feedback_simulated_mlp_small_lookback.json
	nice -n 10 $(BIN)/vigil evaluate lightgbm --feedback --no-retrain --lookback-days 7 --seeds 0-4 \
		--data $(FEEDBACK_WORLD) --results docs/results/feedback_simulated_lightgbm_lookback.json
	nice -n 10 $(BIN)/vigil evaluate logistic --feedback --no-retrain --lookback-days 7 --seeds 0, \
		--data $(FEEDBACK_WORLD) --results docs/results/feedback_simulated_logistic_lookback.json

one-pager: $(STAMP) ## docs/one-pager.{html,pdf,png} from docs/results/*.json and docs/eda/findings.json
	$(BIN)/vigil docs one-pager --out docs

reports: $(STAMP) ## docs/reports/*.md (hypotheses, model preparation, automation) from docs/results
	$(BIN)/vigil docs reports --out docs/reports

demo-video: $(STAMP) ## docs/demo.mp4 + docs/demo.gif recorded from the running system (Chromium, ffmpeg)
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/vigil docs demo-video --workdir data/demo-video --out docs/demo.mp4

tracker-images: $(STAMP) ## experiments on 2 dataset versions in a local MLflow -> docs/images/mlflow-*.png
	$(BIN)/vigil docs tracker --workdir data/showcase --out docs/images

clean:
	rm -rf data runs mlruns models .pytest_cache
