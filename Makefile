# The two commands a newcomer needs: `make demo` and `make test`.
# Both build .venv from requirements*.txt and the committed constraints.txt.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export PATH := $(CURDIR)/$(BIN):$(PATH)
export GX_ANALYTICS_ENABLED := false

.PHONY: help install services demo airflow oracle-init test lint format bench quality-report docs clean

help:
	@echo "make demo    install, then run the whole loop on the embedded default (var/)"
	@echo "make airflow then browse the same state in airflow standalone (localhost:8080)"
	@echo "make test    install, then run the whole suite (ruff lint + format check + pytest)"
	@echo "make bench   measure the pipeline at national scale (prints figures)"
	@echo "make quality-report  score the identity gate on the demo database"
	@echo "make format  apply ruff formatting and fixes"

$(STAMP): requirements.txt requirements-dev.txt constraints.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check \
		-c constraints.txt -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $(STAMP)

install: $(STAMP)

# The embedded default: everything under var/ (demo database, ledger, Airflow home).
DEMO_ENV = CPF_DEPOSIT_HOME=$(CURDIR) \
	AIRFLOW_HOME=$(CURDIR)/var/airflow \
	AIRFLOW__CORE__DAGS_FOLDER=$(CURDIR)/dags \
	AIRFLOW__CORE__PLUGINS_FOLDER=$(CURDIR)/plugins \
	AIRFLOW__CORE__LOAD_EXAMPLES=False \
	AIRFLOW_CONN_APOGEE_DB=sqlite://$(CURDIR)/var/demo/apogee.sqlite

# Starts a real Airflow under var/airflow, runs the loop through it, then stops it.
demo: $(STAMP)
	$(DEMO_ENV) $(BIN)/cpf-deposit demo

# Browse the demo's runs, the deposit form (Required actions) and the dashboard.
# Log in as admin (or viewer); the passwords are in var/airflow/simple_auth_manager_passwords.json.
airflow: $(STAMP)
	$(DEMO_ENV) AIRFLOW__API__HOST=127.0.0.1 AIRFLOW__API__PORT=8080 \
	AIRFLOW__API__BASE_URL=http://localhost:8080 \
	AIRFLOW__CORE__EXECUTION_API_SERVER_URL=http://localhost:8080/execution/ \
	AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=admin:admin,viewer:viewer \
	AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=$(CURDIR)/var/airflow/simple_auth_manager_passwords.json \
	$(BIN)/airflow standalone

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The tests use a real PostgreSQL (ledger, extraction), which this machine kind ships
# at 127.0.0.1:5432 but CI may find stopped, Redis at 127.0.0.1:6379 (the Celery broker
# of the real-stack test, tests/system), Debian's Chromium and its driver for the UI tests.
APT_GET = apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq
services:
	@pg_isready -q -h 127.0.0.1 -p 5432 || \
		pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql | tail -n 1) main start
	@pg_isready -h 127.0.0.1 -p 5432
	@command -v redis-server >/dev/null || ($(APT_GET) redis-server)
	@redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 || \
		redis-server --bind 127.0.0.1 --port 6379 --daemonize yes --save '' --appendonly no
	@for i in 1 2 3 4 5 6 7 8 9 10; do \
		redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.5; done
	@redis-cli -h 127.0.0.1 -p 6379 ping
	@command -v chromium >/dev/null || ($(APT_GET) chromium)
	@command -v chromedriver >/dev/null || ($(APT_GET) chromium-driver)

test: lint services
	$(BIN)/python -m pytest -n 2 --dist loadfile -q

bench: $(STAMP)
	$(BIN)/python tests/bench/run.py

# The identity gate on a demo database, scored against the injected-error ground truth.
quality-report: $(STAMP)
	$(BIN)/python -m cpf_deposit.quality.report --graduates 20000 --seed 42

# Demo Apogée schema and data for `docker compose --profile oracle up`.
oracle-init: $(STAMP)
	$(BIN)/python -c "import tempfile; from cpf_deposit.demo.build import write_demo; \
	from cpf_deposit.demo.oracle import write_oracle_script as w; \
	f = write_demo(tempfile.mkdtemp(), 2000, 2021); \
	print(w(f.apogee, 'include/deploy/oracle-init/10-apogee-demo.sql'), 'statements')"

# Regenerate the table of docs/passage-model.md from the model's field table.
docs: $(STAMP)
	$(BIN)/python -c "import re, pathlib; from cpf_deposit.model import fields_markdown as t; \
	p = pathlib.Path('docs/passage-model.md'); s = p.read_text(); m = '-->\n'; \
	p.write_text(s[: s.index(m) + len(m)] + t())"

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf var .pytest_cache .ruff_cache .hypothesis
