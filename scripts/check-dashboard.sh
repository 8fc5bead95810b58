#!/usr/bin/env bash
# Checks the dashboard (relay/assets, plain ES modules with JSDoc types; the relay serves them as
# they are and `cargo run` needs no Node):
#   1. its API types come from the relay's own OpenAPI document: the document the built relay
#      serves must equal tools/dashboard/openapi.json, and tools/dashboard/openapi.d.ts must be
#      what openapi-typescript makes of it;
#   2. the type check: tsc --noEmit --checkJs (tools/dashboard/tsconfig.json, strict), so a field
#      renamed in the relay fails wherever the dashboard still uses it;
#   3. no HTML from strings (innerHTML and the like) anywhere in relay/assets;
#   4. Biome's formatter and linter (biome.json): `biome ci`.
# `--update` rewrites openapi.json and openapi.d.ts from the relay instead of failing on (1), and
# formats the dashboard (`biome check --write`) before checking it.
# The relay binary is target/debug/fulcrum-relay (scripts/test.sh builds it first), or
# $FULCRUM_RELAY_BIN; without one, (1) compares only openapi.d.ts with the stored document.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
tools=tools/dashboard
update=0
if [ "${1:-}" = "--update" ]; then update=1; fi

# The tools, from the lock file (scripts/setup.sh installs them the same way).
if [ ! -x "$tools/node_modules/.bin/tsc" ] || [ ! -x "$tools/node_modules/.bin/biome" ] \
   || [ "$tools/package-lock.json" -nt "$tools/node_modules/.package-lock.json" ]; then
  (cd "$tools" && npm ci --no-audit --no-fund --loglevel=error)
fi
bin="$tools/node_modules/.bin"
work=$(mktemp -d)
relay_pid=""
cleanup() {
  if [ -n "$relay_pid" ]; then kill "$relay_pid" 2>/dev/null || true; wait "$relay_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# 1. The OpenAPI document, from a relay on embedded SQLite in a scratch directory.
relay="${FULCRUM_RELAY_BIN:-target/debug/fulcrum-relay}"
if [ -x "$relay" ]; then
  # On a port the OS picks; the relay says where it listens (read from a pipe, no polling).
  mkfifo "$work/relay.err"
  env -u FULCRUM_DATABASE_URL -u FULCRUM_CONFIG -u FULCRUM_PUBLIC_URL -u FULCRUM_LISTEN -u FULCRUM_DATA_DIR \
    "$relay" serve --listen "127.0.0.1:0" --data-dir "$work/relay" >"$work/relay.log" 2>"$work/relay.err" &
  relay_pid=$!
  exec 3<"$work/relay.err"
  url=""
  while IFS= read -r -t 30 line <&3; do
    echo "$line" >>"$work/relay.log"
    case "$line" in
      "fulcrum-relay listening on "*) url=${line#fulcrum-relay listening on }; break ;;
    esac
  done
  if [ -n "$url" ]; then
    curl -sf "$url/api/v1/openapi.json" -o "$work/openapi.json" || true
  fi
  kill "$relay_pid" 2>/dev/null || true
  wait "$relay_pid" 2>/dev/null || true
  relay_pid=""
  exec 3<&-
  if [ ! -s "$work/openapi.json" ]; then
    cat "$work/relay.log" >&2
    echo "check-dashboard: $relay did not serve its OpenAPI document" >&2
    exit 1
  fi
  if [ "$update" = 1 ]; then
    node "$tools/openapi.mjs" write "$work/openapi.json"
  else
    node "$tools/openapi.mjs" check "$work/openapi.json"
  fi
else
  echo "check-dashboard: no relay binary at $relay (build it or set FULCRUM_RELAY_BIN):" \
    "tools/dashboard/openapi.json is not compared with the relay" >&2
fi
"$bin/openapi-typescript" "$tools/openapi.json" -o "$work/openapi.d.ts" >/dev/null
if [ "$update" = 1 ]; then
  cp "$work/openapi.d.ts" "$tools/openapi.d.ts"
elif ! cmp -s "$work/openapi.d.ts" "$tools/openapi.d.ts"; then
  echo "check-dashboard: tools/dashboard/openapi.d.ts is not what openapi-typescript makes of openapi.json;" \
    "run scripts/check-dashboard.sh --update" >&2
  exit 1
fi

# 2. The type check.
"$bin/tsc" -p "$tools/tsconfig.json"

# 3. What no linter rule covers: the dashboard never writes HTML from strings (text nodes only).
if grep -rnE '\.(innerHTML|outerHTML)\b|insertAdjacentHTML|document\.write|createContextualFragment' \
     --include='*.js' relay/assets; then
  echo "check-dashboard: relay/assets puts HTML strings into the page; build DOM nodes with h() instead" >&2
  exit 1
fi

# 4. Formatter and linter.
if [ "$update" = 1 ]; then "$bin/biome" check --write --colors=off; fi
"$bin/biome" ci --colors=off
echo "check-dashboard: types, type check, format and lint are clean"
