#!/bin/sh
# Installs (or upgrades) and starts the Fulcrum agent on each workspace start. A Terraform
# template: the module fills in the relay URL, the agent token and the root.
#
# The Coder agent runs this text as `$SHELL -c "<text>"`, so the text, token included, is that
# shell's command line, which `ps` shows. The shell therefore replaces itself at once with
# `sh -s`, which reads the rest from a here-document: from then on no command line holds the
# token. The installer gets it in its environment and keeps it in a file of mode 0600.
exec /bin/sh -s <<'FULCRUM_EOF'
set -eu
relay_url='${RELAY_URL}'
root='${ROOT}'
FULCRUM_AGENT_TOKEN='${TOKEN}'
export FULCRUM_AGENT_TOKEN

# Into a file, not `curl | sh`: a failed download then fails this script instead of feeding
# sh nothing, and the installer's exit code (5: token refused, ...) reaches Coder.
installer=$(mktemp)
trap 'rm -f "$installer"' EXIT
if command -v curl >/dev/null 2>&1; then
	fetch="curl -fsSL --retry 3 -o"
elif command -v wget >/dev/null 2>&1; then
	fetch="wget -q -O"
else
	echo "fulcrum: neither curl nor wget is installed in this workspace" >&2
	exit 3
fi
if ! $fetch "$installer" "$relay_url/install.sh"; then
	echo "fulcrum: cannot download $relay_url/install.sh" >&2
	exit 4
fi
sh "$installer" --relay "$relay_url" --root "$root" </dev/null
FULCRUM_EOF
