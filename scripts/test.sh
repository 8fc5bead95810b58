#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs and starts what the tests need, builds the
# binaries the terminal tests drive, checks the dashboard (scripts/check-dashboard.sh), then runs
# every test with cargo-nextest, and the suites that drive agents a second time with every agent
# on QUIC instead of the WebSocket.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
cargo build --workspace --bins
# The dashboard: its API types against the relay just built, the type check, format and lint.
bash scripts/check-dashboard.sh
cargo nextest run --workspace --no-fail-fast "$@"
# The suites that drive agents through the transport run again with every agent on QUIC; the
# others (and every new suite, unless it tests the transport) run on the WebSocket pass only.
# `--workspace` with a filter, not `-p`: the same features, so the first pass's build is reused.
quic_suites=(jobs jobs_access jobs_terminal terminal live_status mcp tenancy bad_input auth
  token_expiry quic tls proxy dev install operator_cli)
filter="package(fulcrum-tests) and ($(printf 'binary(%s) | ' "${quic_suites[@]}" | sed 's/ | $//'))"
FULCRUM_TEST_TRANSPORT=quic cargo nextest run --workspace --no-fail-fast -E "$filter" "$@"
