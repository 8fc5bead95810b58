#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs and starts what the tests need, builds the
# binaries the terminal tests drive, checks the dashboard (scripts/check-dashboard.sh), then runs
# every test with cargo-nextest, and the integration
# tests a second time with every agent on QUIC instead of the WebSocket.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
cargo build --workspace --bins
# The dashboard: its API types against the relay just built, the type check, format and lint.
bash scripts/check-dashboard.sh
cargo nextest run --workspace --no-fail-fast "$@"
# Suites that do not touch the agent transport (pipelines) run on the WebSocket pass only.
FULCRUM_TEST_TRANSPORT=quic cargo nextest run -p fulcrum-tests --no-fail-fast -E "not binary(pipelines)" "$@"
