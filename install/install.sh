#!/bin/sh
# Fulcrum workspace agent installer.
#
#   curl -fsSL https://RELAY/install.sh | FULCRUM_AGENT_TOKEN=... sh
#   curl -fsSL https://RELAY/install.sh | sh -s -- --token-file ~/fulcrum-token --root ~/src
#   sh install.sh --relay https://RELAY --token-file FILE
#   sh install.sh --uninstall
#
# It checks the token with the relay, downloads the agent binary for this OS and architecture,
# verifies its SHA-256, installs it atomically, writes the agent's config (token in a file of
# mode 0600) and starts the agent: as a systemd user service when a user systemd instance is
# reachable, else under a small background supervisor. Re-running it upgrades the binary and
# restarts the agent. Run with --help for the options.
#
# Exit codes: 0 done, 1 other error, 3 neither curl nor wget, 4 relay unreachable or wrong URL,
# 5 token refused, 6 checksum mismatch, 7 unsupported OS or architecture.
#
# POSIX sh. Everything runs from the last line, so a truncated download runs nothing. The token
# never appears on a command line: it goes to curl as config on stdin (or to wget in a wgetrc
# file), written by the shell's builtin printf.

set -eu

# The relay serving this script replaces this with its public URL.
SERVED_RELAY_URL='__FULCRUM_RELAY_URL__'
# What it holds when nobody replaced it; in two halves so that the relay leaves it alone.
UNREPLACED_RELAY_URL='__FULCRUM_''RELAY_URL__'

UNIT_NAME=fulcrum-agent.service
NL='
'

say() { printf 'fulcrum-install: %s\n' "$*" >&2; }
warn() { printf 'fulcrum-install: warning: %s\n' "$*" >&2; }
die() {
	die_code=$1
	shift
	printf 'fulcrum-install: error: %s\n' "$*" >&2
	exit "$die_code"
}

usage() {
	cat <<'EOF'
Install the Fulcrum workspace agent and start it.

  curl -fsSL https://RELAY/install.sh | FULCRUM_AGENT_TOKEN=TOKEN sh
  curl -fsSL https://RELAY/install.sh | sh -s -- [options]

Options:
  --relay URL         the relay [env FULCRUM_RELAY_URL; default: the relay that served
                      this script, else the installed config's]
  --token TOKEN       the agent token; shows in `ps`, prefer FULCRUM_AGENT_TOKEN or
                      --token-file [default: the installed token]
  --token-file FILE   read the agent token from FILE [env FULCRUM_AGENT_TOKEN_FILE]
  --root DIR          the directory the agent watches [default: $HOME]
  --bin-dir DIR       where `fulcrum` goes [default: ~/.local/bin; /usr/local/bin as root]
  --config-dir DIR    [default: ${XDG_CONFIG_HOME:-~/.config}/fulcrum]
  --state-dir DIR     [default: ${XDG_STATE_HOME:-~/.local/state}/fulcrum]
  --no-start          install, but neither start nor restart the agent
  --uninstall         stop the agent and remove what this script installed, state included
  --keep-state        with --uninstall: keep the state directory
  -h, --help          show this help

Re-running upgrades the binary in place and restarts the agent; the relay, token, root,
state and bin directories default to the installed ones.

Exit codes: 0 done, 1 other error, 3 neither curl nor wget, 4 relay unreachable or wrong
URL, 5 token refused, 6 checksum mismatch, 7 unsupported OS or architecture.
EOF
}

# ---------------------------------------------------------------------------------------------
# Arguments and paths

opt_relay=
opt_token=
opt_token_file=
opt_bin_dir=
opt_state_dir=
opt_config_dir=
opt_root=
opt_no_start=
opt_uninstall=
opt_keep_state=

set_opt() {
	[ -n "$2" ] || die 1 "$1 needs a non-empty value"
	case $1 in
	--relay) opt_relay=$2 ;;
	--token) opt_token=$2 ;;
	--token-file) opt_token_file=$2 ;;
	--bin-dir) opt_bin_dir=$2 ;;
	--state-dir) opt_state_dir=$2 ;;
	--config-dir) opt_config_dir=$2 ;;
	--root) opt_root=$2 ;;
	esac
}

parse_args() {
	while [ $# -gt 0 ]; do
		case $1 in
		--relay | --token | --token-file | --bin-dir | --state-dir | --config-dir | --root)
			[ $# -ge 2 ] || die 1 "$1 needs a value (see --help)"
			set_opt "$1" "$2"
			shift 2
			;;
		--relay=* | --token=* | --token-file=* | --bin-dir=* | --state-dir=* | --config-dir=* | --root=*)
			set_opt "${1%%=*}" "${1#*=}"
			shift
			;;
		--no-start) opt_no_start=1 && shift ;;
		--uninstall) opt_uninstall=1 && shift ;;
		--keep-state) opt_keep_state=1 && shift ;;
		-h | --help)
			usage
			exit 0
			;;
		*) die 1 "unknown argument: $1 (see --help)" ;;
		esac
	done
}

# An absolute path: ~ expanded, relative paths taken from the current directory.
# shellcheck disable=SC2088 # a literal "~/" that the shell did not expand (--opt=~/x)
abs_path() {
	case $1 in
	"~") printf '%s' "$HOME" ;;
	"~/"*) printf '%s/%s' "$HOME" "${1#"~/"}" ;;
	/*) printf '%s' "$1" ;;
	*) printf '%s/%s' "$PWD" "$1" ;;
	esac
}

# Paths go into a TOML file and a systemd unit between double quotes: keep them simple.
check_path() {
	case $2 in
	*'"'* | *\\* | *"$NL"*) die 1 "the $1 may not contain a double quote, a backslash or a newline: $2" ;;
	esac
}

# A string value of the installed config ("" when absent).
config_value() {
	[ -f "$config_file" ] || return 0
	sed -n "s/^$1 = \"\\(.*\\)\"\$/\\1/p" "$config_file" | head -n 1
}

# The directories, from flags, then the installed config, then the defaults.
resolve_dirs() {
	[ -n "${HOME:-}" ] || die 1 "HOME is not set"
	if [ -n "$opt_config_dir" ]; then
		config_dir=$(abs_path "$opt_config_dir")
	else
		config_dir="${XDG_CONFIG_HOME:-$HOME/.config}/fulcrum"
	fi
	config_file="$config_dir/agent.toml"
	token_path="$config_dir/token"
	unit_file="${XDG_CONFIG_HOME:-$HOME/.config}/systemd/user/$UNIT_NAME"

	old_state_dir=$(config_value state_dir)
	old_root=$(config_value root)
	old_bin=$(config_value '# bin')
	old_relay=$(config_value relay_url)

	if [ -n "$opt_state_dir" ]; then
		state_dir=$(abs_path "$opt_state_dir")
	elif [ -n "$old_state_dir" ]; then
		state_dir=$old_state_dir
	else
		state_dir="${XDG_STATE_HOME:-$HOME/.local/state}/fulcrum"
	fi
	default_state_dir="${XDG_STATE_HOME:-$HOME/.local/state}/fulcrum"

	if [ -n "$opt_bin_dir" ]; then
		bin_dir=$(abs_path "$opt_bin_dir")
	elif [ -n "$old_bin" ]; then
		bin_dir=${old_bin%/*}
	elif [ "$(id -u)" = 0 ]; then
		bin_dir=/usr/local/bin
	else
		bin_dir="$HOME/.local/bin"
	fi
	bin="$bin_dir/fulcrum"

	if [ -n "$opt_root" ]; then
		root=$(abs_path "$opt_root")
	elif [ -n "$old_root" ]; then
		root=$old_root
	else
		root=$HOME
	fi

	check_path "config directory" "$config_dir"
	check_path "state directory" "$state_dir"
	check_path "bin directory" "$bin_dir"
	check_path "root" "$root"
}

# ---------------------------------------------------------------------------------------------
# Platform and tools

detect_platform() {
	uname_s=$(uname -s)
	case $uname_s in
	Linux) os=linux ;;
	Darwin) os=darwin ;;
	*) die 7 "unsupported operating system: $uname_s (the agent runs on Linux and macOS)" ;;
	esac
	uname_m=$(uname -m)
	case $uname_m in
	x86_64 | amd64) arch=x86_64 ;;
	aarch64 | arm64) arch=aarch64 ;;
	*) die 7 "unsupported architecture: $uname_m (the agent runs on x86_64 and aarch64)" ;;
	esac
	# A shell under Rosetta says x86_64 on Apple silicon; the native build is the right one.
	if [ "$os" = darwin ] && [ "$arch" = x86_64 ] &&
		[ "$(sysctl -n sysctl.proc_translated 2>/dev/null || true)" = 1 ]; then
		arch=aarch64
	fi
}

pick_tools() {
	if command -v curl >/dev/null 2>&1; then
		dl=curl
	elif command -v wget >/dev/null 2>&1; then
		if wget --version 2>/dev/null | grep -q 'GNU Wget'; then
			dl=wget
		else
			dl=busybox-wget
		fi
	else
		die 3 "neither curl nor wget is installed: install one (e.g. apt-get install curl) and run this again"
	fi
	if command -v sha256sum >/dev/null 2>&1; then
		sha=sha256sum
	elif command -v shasum >/dev/null 2>&1; then
		sha=shasum
	elif command -v openssl >/dev/null 2>&1; then
		sha=openssl
	else
		die 1 "no SHA-256 tool (sha256sum, shasum or openssl) to verify the download with"
	fi
}

sha256_of() {
	case $sha in
	sha256sum) sha256sum "$1" ;;
	shasum) shasum -a 256 "$1" ;;
	openssl) openssl dgst -sha256 -r "$1" ;;
	esac | awk 'NR == 1 { print tolower($1) }'
}

# ---------------------------------------------------------------------------------------------
# HTTP

# http_get URL OUT AUTH FOLLOW: fetches URL into OUT, with the agent token when AUTH is
# non-empty and following redirects when FOLLOW is. Sets http_code ("000" when no HTTP answer
# came), http_location (a redirect's target) and http_error (the tool's last message).
http_get() {
	hg_url=$1 hg_out=$2 hg_auth=$3 hg_follow=$4
	hg_err="$work/http.err"
	: >"$hg_err"
	http_location=
	case $dl in
	curl)
		set -- -sS -o "$hg_out" -w '%{http_code}\n%{redirect_url}' --connect-timeout 15
		if [ -n "$hg_follow" ]; then
			set -- "$@" -L --retry 2 --max-time 600
		else
			set -- "$@" --max-time 30
		fi
		if [ -n "$hg_auth" ]; then
			# Config on stdin, from the builtin printf: the token is on no command line.
			hg_w=$(printf 'header = "Authorization: Bearer %s"\n' "$token" |
				curl "$@" --config - "$hg_url" 2>"$hg_err") || true
		else
			hg_w=$(curl "$@" "$hg_url" 2>"$hg_err") || true
		fi
		http_code=${hg_w%%"$NL"*}
		case $hg_w in *"$NL"*) http_location=${hg_w#*"$NL"} ;; esac
		;;
	wget | busybox-wget)
		if [ "$dl" = wget ]; then
			set -- -S -O "$hg_out" --timeout=15 --tries=2
			if [ -z "$hg_follow" ]; then set -- "$@" --max-redirect=0; fi
		else
			set -- -S -O "$hg_out" -T 15
		fi
		if [ -n "$hg_auth" ]; then
			# wget's --header would show in ps: the header goes in a wgetrc file instead.
			printf 'header = Authorization: Bearer %s\n' "$token" >"$work/wgetrc"
			WGETRC="$work/wgetrc" wget "$@" "$hg_url" 2>"$hg_err" || true
		else
			wget "$@" "$hg_url" 2>"$hg_err" || true
		fi
		http_location=$(sed -n 's/^ *[Ll]ocation: *//p' "$hg_err" | tail -n 1 | tr -d '\r')
		http_code=
		;;
	esac
	if [ -z "$http_code" ] || [ "$http_code" = 000 ]; then
		# wget, or curl without an answer: the last status line in the tool's messages.
		http_code=$(awk 'match($0, /HTTP\/[0-9.]+ [0-9][0-9][0-9]/) {
			s = substr($0, RSTART, RLENGTH); sub(/.* /, "", s); c = s
		} END { print (c == "" ? "000" : c) }' "$hg_err")
	fi
	http_error=$(grep -v '^ ' "$hg_err" | sed '/^[[:space:]]*$/d' | tail -n 1)
}

# ---------------------------------------------------------------------------------------------
# Relay URL and token

resolve_relay() {
	if [ -n "$opt_relay" ]; then
		relay=$opt_relay
	elif [ -n "${FULCRUM_RELAY_URL:-}" ]; then
		relay=$FULCRUM_RELAY_URL
	elif [ "$SERVED_RELAY_URL" != "$UNREPLACED_RELAY_URL" ]; then
		relay=$SERVED_RELAY_URL
	elif [ -n "$old_relay" ]; then
		relay=$old_relay
	else
		die 1 "no relay URL: pass --relay URL or set FULCRUM_RELAY_URL"
	fi
	while :; do
		case $relay in
		*/) relay=${relay%/} ;;
		*) break ;;
		esac
	done
	case $relay in
	*[[:space:]\"\'\\]*) die 4 "not a valid relay URL: $relay" ;;
	http://?* | https://?*) ;;
	*) die 4 "the relay URL must start with http:// or https://: $relay" ;;
	esac
}

resolve_token() {
	token_source=
	token_file_in=${opt_token_file:-${FULCRUM_AGENT_TOKEN_FILE:-}}
	if [ -n "$opt_token" ]; then
		token=$opt_token
		token_source="--token"
	elif [ -n "$token_file_in" ]; then
		token_file_in=$(abs_path "$token_file_in")
		[ -r "$token_file_in" ] || die 1 "cannot read the token file $token_file_in"
		token=$(tr -d ' \t\r\n' <"$token_file_in")
		token_source=$token_file_in
	elif [ -n "${FULCRUM_AGENT_TOKEN:-}" ]; then
		token=$FULCRUM_AGENT_TOKEN
		token_source=FULCRUM_AGENT_TOKEN
	elif [ -r "$token_path" ]; then
		token=$(tr -d ' \t\r\n' <"$token_path")
		token_source="the installed token ($token_path)"
	else
		die 1 "no agent token: set FULCRUM_AGENT_TOKEN or pass --token-file FILE (create a token in the relay's dashboard)"
	fi
	[ -n "$token" ] || die 1 "the agent token from $token_source is empty"
	case $token in
	*[[:space:]\"\\]*) die 1 "the agent token from $token_source has unexpected characters (spaces, quotes or backslashes)" ;;
	esac
}

# Before anything persistent: the relay must answer, and must not refuse the token. The
# connect endpoint answers 401 (or 403) to a bad token; any other answer means it took it.
check_relay_and_token() {
	if [ "$dl" = busybox-wget ]; then
		warn "cannot check the token without curl or GNU wget (BusyBox wget would show it in ps); a refused token will show in the agent's log"
		return 0
	fi
	say "checking the token with $relay"
	http_get "$relay/api/v1/agent/connect" "$work/connect.body" auth ""
	case $http_code in
	000) die 4 "cannot reach the relay at $relay${http_error:+: $http_error}" ;;
	401 | 403) die 5 "the relay refused the agent token from $token_source (HTTP $http_code): it is wrong, expired or revoked; create a new one in the relay's dashboard" ;;
	404) die 4 "$relay does not look like a Fulcrum relay (its agent endpoint answered 404): check the URL" ;;
	3[0-9][0-9]) die 4 "$relay redirects${http_location:+ to $http_location} (HTTP $http_code): use the URL it redirects to" ;;
	5[0-9][0-9]) warn "the relay answered HTTP $http_code; going on, the agent will keep retrying" ;;
	*) say "relay reachable, token accepted" ;;
	esac
}

# ---------------------------------------------------------------------------------------------
# Install

install_binary() {
	mkdir -p "$bin_dir" || die 1 "cannot create $bin_dir; choose another with --bin-dir"
	[ -w "$bin_dir" ] || die 1 "cannot write to $bin_dir; choose another with --bin-dir"
	base="$relay/download/fulcrum/$os/$arch"

	say "downloading the agent for $os/$arch"
	http_get "$base/sha256" "$work/sha256" "" follow
	case $http_code in
	200) ;;
	404) die 7 "the relay has no agent build for $os/$arch" ;;
	000) die 4 "cannot reach the relay at $relay${http_error:+: $http_error}" ;;
	*) die 1 "downloading $base/sha256 failed (HTTP $http_code)" ;;
	esac
	expected=$(awk 'NR == 1 { print tolower($1) }' "$work/sha256")
	case $expected in
	*[!0-9a-f]* | "") die 1 "the relay's checksum for $os/$arch is not a SHA-256 digest" ;;
	esac
	[ ${#expected} -eq 64 ] || die 1 "the relay's checksum for $os/$arch is not a SHA-256 digest"

	tmp_bin=$(mktemp "$bin_dir/.fulcrum.XXXXXX") || die 1 "cannot create a file in $bin_dir"
	http_get "$base" "$tmp_bin" "" follow
	case $http_code in
	200) ;;
	404) die 7 "the relay has no agent build for $os/$arch" ;;
	000) die 4 "downloading the agent from $relay failed${http_error:+: $http_error}" ;;
	*) die 1 "downloading $base failed (HTTP $http_code)" ;;
	esac
	actual=$(sha256_of "$tmp_bin")
	[ -n "$actual" ] || die 1 "cannot compute the SHA-256 of the download"
	[ "$actual" = "$expected" ] ||
		die 6 "checksum mismatch for $base: expected $expected, got $actual; nothing was installed"
	chmod 755 "$tmp_bin"
	mv -f "$tmp_bin" "$bin" || die 1 "cannot move the agent into $bin"
	tmp_bin=
	say "installed $bin"
}

write_config() {
	(umask 077 && mkdir -p "$config_dir" "$state_dir") || die 1 "cannot create $config_dir or $state_dir"
	# A hand-added ca_file or max_jobs survives a re-run.
	kept=$(grep -E '^[[:space:]]*(ca_file|max_jobs)[[:space:]]*=' "$config_file" 2>/dev/null || true)
	# set -e does not apply inside a subshell on the left of ||: every step is chained.
	(
		umask 077 &&
			printf '%s\n' "$token" >"$config_dir/.token.tmp" &&
			chmod 600 "$config_dir/.token.tmp" &&
			mv -f "$config_dir/.token.tmp" "$token_path" &&
			{
				printf '# The Fulcrum agent config, written by install.sh. Re-running it rewrites this\n' &&
					printf '# file, keeping ca_file and max_jobs; see fulcrum agent --help for the keys.\n' &&
					printf '# bin = "%s"\n' "$bin" &&
					printf 'relay_url = "%s"\n' "$relay" &&
					printf 'token_file = "%s"\n' "$token_path" &&
					printf 'root = "%s"\n' "$root" &&
					printf 'state_dir = "%s"\n' "$state_dir" &&
					if [ -n "$kept" ]; then printf '%s\n' "$kept"; fi
			} >"$config_dir/.agent.toml.tmp" &&
			mv -f "$config_dir/.agent.toml.tmp" "$config_file"
	) || die 1 "cannot write $config_file"
	say "wrote $config_file (token in $token_path, mode 0600)"
}

# ---------------------------------------------------------------------------------------------
# Running the agent

have_user_systemd() {
	command -v systemctl >/dev/null 2>&1 && systemctl --user show-environment >/dev/null 2>&1
}

read_pid() {
	[ -f "$1" ] || return 0
	tr -cd '0-9' <"$1"
}

# Whether PID runs and is one of ours (a supervisor or an agent: "fulcrum" in its command line).
is_ours() {
	kill -0 "$1" 2>/dev/null || return 1
	if [ -r "/proc/$1/cmdline" ]; then
		{ tr '\0' ' ' <"/proc/$1/cmdline"; } 2>/dev/null | grep -q fulcrum
	elif command -v ps >/dev/null 2>&1; then
		ps -p "$1" -o args= 2>/dev/null | grep -q fulcrum
	fi
}

pgid_of() {
	if [ -r "/proc/$1/stat" ]; then
		sed 's/.*) //' "/proc/$1/stat" | cut -d ' ' -f 3
	elif command -v ps >/dev/null 2>&1; then
		ps -o pgid= -p "$1" 2>/dev/null | tr -d ' '
	fi
}

# Stops the supervisor recorded in state dir $1 and its agent: TERM, then KILL after 15 s.
stop_supervisor() {
	ss_pid_file="$1/agent.pid"
	ss_child_file="$1/agent.child.pid"
	ss_sup=$(read_pid "$ss_pid_file")
	ss_child=$(read_pid "$ss_child_file")
	ss_pids=
	if [ -n "$ss_sup" ] && is_ours "$ss_sup"; then
		ss_pids=" $ss_sup"
		# Started with setsid, it leads a process group holding the agent too.
		if [ "$(pgid_of "$ss_sup")" = "$ss_sup" ]; then
			kill -s TERM -- "-$ss_sup" 2>/dev/null || true
		fi
		kill -s TERM "$ss_sup" 2>/dev/null || true
	fi
	if [ -n "$ss_child" ] && [ "$ss_child" != "$ss_sup" ] && is_ours "$ss_child"; then
		ss_pids="$ss_pids $ss_child"
		kill -s TERM "$ss_child" 2>/dev/null || true
	fi
	if [ -n "$ss_pids" ]; then
		say "stopping the running agent (pid$ss_pids)"
		ss_i=0
		while :; do
			ss_alive=
			for ss_p in $ss_pids; do
				if is_ours "$ss_p"; then ss_alive="$ss_alive $ss_p"; fi
			done
			[ -n "$ss_alive" ] || break
			ss_i=$((ss_i + 1))
			if [ "$ss_i" -gt 15 ]; then
				warn "still running after 15 s, killing:$ss_alive"
				for ss_p in $ss_alive; do kill -s KILL "$ss_p" 2>/dev/null || true; done
				sleep 1
				break
			fi
			sleep 1
		done
	fi
	rm -f "$ss_pid_file" "$ss_child_file"
}

# The supervisor: runs the agent, restarts it 2 s after it exits, and on TERM stops it and exits.
# It records its own pid and the agent's, so the next run of this script can stop both.
# shellcheck disable=SC2016 # expanded by the supervisor's shell, not this one
SUPERVISOR='
bin=$1 config=$2 pid_file=$3 child_file=$4
echo "$$" >"$pid_file"
child=
trap '\''[ -z "$child" ] || kill "$child" 2>/dev/null; rm -f "$pid_file" "$child_file"; exit 0'\'' TERM INT
while :; do
	"$bin" agent --config "$config" &
	child=$!
	echo "$child" >"$child_file"
	status=0
	wait "$child" || status=$?
	child=
	echo "fulcrum-supervisor: $(date "+%Y-%m-%dT%H:%M:%S%z") the agent exited with status $status; restarting it in 2 s" >&2
	sleep 2
done
'

start_supervisor() {
	pid_file="$state_dir/agent.pid"
	log_file="$state_dir/agent.log"
	(umask 077 && : >>"$log_file") || die 1 "cannot write $log_file"
	(
		cd /
		# The config file is the one source of settings, as under systemd: variables the agent
		# reads would override it (and this script may have been given the token in one).
		unset FULCRUM_AGENT_TOKEN FULCRUM_AGENT_TOKEN_FILE FULCRUM_RELAY_URL FULCRUM_ROOT \
			FULCRUM_STATE_DIR FULCRUM_AGENT_CONFIG
		if command -v setsid >/dev/null 2>&1; then
			setsid nohup sh -c "$SUPERVISOR" fulcrum-supervisor "$bin" "$config_file" \
				"$pid_file" "$state_dir/agent.child.pid" </dev/null >>"$log_file" 2>&1 &
		else
			nohup sh -c "$SUPERVISOR" fulcrum-supervisor "$bin" "$config_file" \
				"$pid_file" "$state_dir/agent.child.pid" </dev/null >>"$log_file" 2>&1 &
		fi
	)
	sp_i=0
	while [ ! -s "$pid_file" ] || [ ! -s "$state_dir/agent.child.pid" ]; do
		sp_i=$((sp_i + 1))
		[ "$sp_i" -le 10 ] || die 1 "the supervisor did not start; see $log_file"
		sleep 1
	done
	supervisor_pid=$(read_pid "$pid_file")
	run_mode="background supervisor, pid $supervisor_pid (restarts the agent when it exits; log: $log_file)"
	run_note="It does not survive a reboot or a workspace restart: run this script again then (Coder's module does)."
	say "started the agent under a supervisor (pid $supervisor_pid)"
}

start_systemd() {
	sd_rerun=
	if [ -f "$unit_file" ]; then sd_rerun=1; fi
	sd_exec_bin=$(printf '%s' "$bin" | sed 's/[%$]/&&/g')
	sd_exec_cfg=$(printf '%s' "$config_file" | sed 's/[%$]/&&/g')
	mkdir -p "${unit_file%/*}" || die 1 "cannot create ${unit_file%/*}"
	{
		printf '# Written by the Fulcrum install script (install.sh --uninstall removes it).\n'
		printf '[Unit]\nDescription=Fulcrum workspace agent\nAfter=network-online.target\n\n'
		printf '[Service]\nType=simple\n'
		printf 'ExecStart="%s" agent --config "%s"\n' "$sd_exec_bin" "$sd_exec_cfg"
		printf 'KillSignal=SIGTERM\nTimeoutStopSec=15s\nRestart=on-failure\nRestartSec=2s\n\n'
		printf '[Install]\nWantedBy=default.target\n'
	} >"$unit_file.tmp" || die 1 "cannot write $unit_file"
	mv -f "$unit_file.tmp" "$unit_file" || die 1 "cannot write $unit_file"
	sd_out=$(systemctl --user daemon-reload 2>&1) || die 1 "systemctl --user daemon-reload failed: $sd_out"
	if [ -n "$sd_rerun" ]; then
		sd_out=$(systemctl --user enable "$UNIT_NAME" 2>&1) || die 1 "systemctl --user enable $UNIT_NAME failed: $sd_out"
		sd_out=$(systemctl --user restart "$UNIT_NAME" 2>&1) || die 1 "systemctl --user restart $UNIT_NAME failed: $sd_out"
		say "restarted $UNIT_NAME"
	else
		sd_out=$(systemctl --user enable --now "$UNIT_NAME" 2>&1) || die 1 "systemctl --user enable --now $UNIT_NAME failed: $sd_out"
		say "enabled and started $UNIT_NAME"
	fi
	run_mode="systemd user service $UNIT_NAME (logs: journalctl --user -u fulcrum-agent)"
	run_note=
	if command -v loginctl >/dev/null 2>&1 &&
		[ "$(loginctl show-user "$(id -un)" -p Linger 2>/dev/null || true)" = Linger=no ]; then
		run_note="It stops when you log out; \`loginctl enable-linger\` keeps it running."
	fi
}

start_agent() {
	# Whatever ran before (a supervisor in the old or new state dir) goes first: one agent only.
	stop_supervisor "$state_dir"
	if [ -n "$old_state_dir" ] && [ "$old_state_dir" != "$state_dir" ]; then
		stop_supervisor "$old_state_dir"
	fi
	if have_user_systemd; then
		start_systemd
	else
		if [ -f "$unit_file" ]; then
			warn "$unit_file exists but no user systemd instance is reachable; using a supervisor"
		fi
		start_supervisor
	fi
	# Give it a few seconds to connect.
	connected=
	sa_i=0
	while [ "$sa_i" -lt 10 ]; do
		if "$bin" status --state-dir "$state_dir" >/dev/null 2>&1; then
			connected=1
			break
		fi
		sa_i=$((sa_i + 1))
		sleep 1
	done
}

# ---------------------------------------------------------------------------------------------
# Main

summary() {
	status_cmd="fulcrum status"
	if [ "$state_dir" != "$default_state_dir" ]; then status_cmd="$status_cmd --state-dir $state_dir"; fi
	printf '\nFulcrum agent installed (%s/%s).\n' "$os" "$arch"
	printf '  binary   %s\n' "$bin"
	printf '  config   %s (token in %s, mode 0600)\n' "$config_file" "$token_path"
	printf '  state    %s\n' "$state_dir"
	printf '  watches  %s\n' "$root"
	printf '  relay    %s\n' "$relay"
	if [ -n "$opt_no_start" ]; then
		printf '  runs     not started (--no-start): %s agent --config %s\n' "$bin" "$config_file"
	else
		printf '  runs as  %s\n' "$run_mode"
		if [ -n "$connected" ]; then
			printf '  status   connected\n'
		else
			printf '  status   not connected yet; "%s" says why\n' "$status_cmd"
		fi
		if [ -n "$run_note" ]; then printf '  note     %s\n' "$run_note"; fi
	fi
	case ":${PATH:-}:" in
	*":$bin_dir:"*) ;;
	*) printf '  note     %s is not in your PATH: add it, or run %s\n' "$bin_dir" "$bin" ;;
	esac
	printf 'Check it with: %s\n' "$status_cmd"
}

uninstall() {
	un_done=
	if [ -f "$unit_file" ]; then
		if have_user_systemd; then
			systemctl --user disable --now "$UNIT_NAME" >/dev/null 2>&1 ||
				warn "systemctl --user disable --now $UNIT_NAME failed"
		else
			warn "no user systemd instance is reachable to stop $UNIT_NAME"
		fi
		rm -f "$unit_file"
		if have_user_systemd; then systemctl --user daemon-reload >/dev/null 2>&1 || true; fi
		say "removed $unit_file"
		un_done=1
	fi
	for un_dir in "$state_dir" ${old_state_dir:+"$old_state_dir"}; do
		if [ -f "$un_dir/agent.pid" ] || [ -f "$un_dir/agent.child.pid" ]; then
			stop_supervisor "$un_dir"
			un_done=1
		fi
	done
	if [ -e "$bin" ]; then
		rm -f "$bin"
		say "removed $bin"
		un_done=1
	fi
	if [ -d "$config_dir" ]; then
		rm -f "$config_file" "$token_path" "$config_dir/.agent.toml.tmp" "$config_dir/.token.tmp"
		if rmdir "$config_dir" 2>/dev/null; then
			say "removed $config_dir"
		else
			say "removed the config and token from $config_dir (left the directory: other files are in it)"
		fi
		un_done=1
	fi
	if [ -d "$state_dir" ]; then
		if [ -n "$opt_keep_state" ]; then
			say "kept the state directory $state_dir (--keep-state)"
		else
			case ${state_dir##*/} in
			fulcrum*)
				rm -rf "$state_dir"
				say "removed the state directory $state_dir (task logs and agent state)"
				;;
			*)
				rm -f "$state_dir/agent.log" "$state_dir/agent.pid" "$state_dir/agent.child.pid"
				if rmdir "$state_dir" 2>/dev/null; then
					say "removed $state_dir"
				else
					say "left $state_dir: it is not named fulcrum* and holds other files; remove it yourself"
				fi
				;;
			esac
		fi
		un_done=1
	fi
	if [ -n "$un_done" ]; then
		say "the Fulcrum agent is uninstalled"
	else
		say "nothing to uninstall: no Fulcrum agent found in the default (or given) locations"
	fi
}

work=
tmp_bin=
cleanup() {
	if [ -n "$tmp_bin" ]; then rm -f "$tmp_bin"; fi
	if [ -n "$work" ]; then rm -rf "$work"; fi
}

main() {
	parse_args "$@"
	resolve_dirs
	if [ -n "$opt_uninstall" ]; then
		uninstall
		return 0
	fi
	detect_platform
	pick_tools
	resolve_relay
	resolve_token
	[ -d "$root" ] || die 1 "the root directory $root does not exist"

	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	work=$(mktemp -d 2>/dev/null || mktemp -d -t fulcrum-install) || die 1 "cannot create a temporary directory"
	chmod 700 "$work"

	check_relay_and_token
	install_binary
	write_config
	if [ -z "$opt_no_start" ]; then start_agent; fi
	summary
}

main "$@"
