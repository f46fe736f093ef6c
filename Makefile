# One command runs everything: `make run`. See README.md.
SHELL := /bin/bash
.DEFAULT_GOAL := run

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Written after a successful install; pip runs again only when one of its prerequisites changes.
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
ARGS ?=

.PHONY: run serve test lint bench install

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml constraints.txt | $(PY)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test,postgres,redis,otel]' -c constraints.txt
	touch $@

install: $(STAMP)

# Local keys for the embedded default. Never overwritten: delete .env yourself to start over.
.env: | $(STAMP)
	@test ! -e $@
	@umask 077 && $(PY) -c "import secrets; from cryptography.fernet import Fernet; \
	print('SECRET_KEY=' + secrets.token_urlsafe(50)); \
	print('FIELD_ENCRYPTION_KEYS=' + Fernet.generate_key().decode()); \
	print('DEBUG=true')" > $@.tmp && mv -n $@.tmp $@ && rm -f $@.tmp
	@echo "Wrote .env with a generated SECRET_KEY and FIELD_ENCRYPTION_KEYS."

run: $(STAMP) .env
	$(PY) manage.py migrate --noinput
	$(PY) manage.py load_demo_flows
	$(PY) manage.py ensure_admin
	$(PY) manage.py runall --host $(HOST) --port $(PORT)

# The production web server: gunicorn with the settings of config/gunicorn.conf.py (HOST, PORT,
# WEB_CONCURRENCY processes x WEB_THREADS threads). Needs the production environment
# (SECRET_KEY, FIELD_ENCRYPTION_KEYS, DATABASE_URL, ...) and `manage.py migrate` run once per
# release; start workers separately (`manage.py qcluster`, the Procfile's `worker`).
serve: $(STAMP)
	HOST=$(HOST) PORT=$(PORT) $(VENV)/bin/gunicorn -c config/gunicorn.conf.py config.wsgi:application

test: $(STAMP)
	$(PY) -m pytest $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

bench: $(STAMP)
	@set -e; for f in bench/*.py; do \
		[ -e "$$f" ] || continue; \
		echo "== $$f"; \
		PYTHONPATH=$(CURDIR) $(PY) "$$f"; \
	done
