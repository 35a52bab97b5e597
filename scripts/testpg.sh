#!/usr/bin/env bash
# A throwaway PostgreSQL for tests: initdb into a temporary directory, trust
# auth, listening on 127.0.0.1 at a free port (and a Unix socket in the same
# directory), durability switched off for speed. Nothing outside the
# directory is touched; stopping deletes it.
#
# As a command:
#   eval "$(scripts/testpg.sh start)"   # exports TEST_DATABASE_URL and TESTPG_DIR
#   go test -race ./internal/store/...
#   scripts/testpg.sh stop              # stops $TESTPG_DIR (or: stop DIR)
#   scripts/testpg.sh bindir            # prints where initdb/pg_ctl are; exit 1 if nowhere
#
# Sourced (as .ci/run and scripts/with-testpg.sh do):
#   source scripts/testpg.sh
#   testpg_start                        # exports TEST_DATABASE_URL and TESTPG_DIR
#   trap testpg_stop EXIT
#
# PostgreSQL refuses to run as root, so when run as root the server runs as
# $TESTPG_USER, else "postgres" if that user exists, else "nobody", and the
# temporary directory is given to that user.
#
# Settings (environment):
#   TESTPG_BINDIR   directory with initdb and pg_ctl (default: PATH, then
#                   /usr/lib/postgresql/$TESTPG_VERSION/bin, then the newest
#                   /usr/lib/postgresql/*/bin)
#   TESTPG_VERSION  preferred major version under /usr/lib/postgresql (15)
#   TESTPG_USER     system user to run the server as when root
#   TMPDIR          where the temporary directory goes (/tmp)

# Find initdb and pg_ctl; print their directory.
testpg_bindir() {
	local d
	if [[ -n "${TESTPG_BINDIR:-}" ]]; then
		if [[ -x "$TESTPG_BINDIR/initdb" && -x "$TESTPG_BINDIR/pg_ctl" ]]; then
			echo "$TESTPG_BINDIR"
			return 0
		fi
		echo "testpg: TESTPG_BINDIR=$TESTPG_BINDIR has no initdb and pg_ctl" >&2
		return 1
	fi
	if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
		d=$(dirname "$(command -v pg_ctl)")
		if [[ -x "$d/initdb" ]]; then
			echo "$d"
			return 0
		fi
	fi
	d="/usr/lib/postgresql/${TESTPG_VERSION:-15}/bin"
	if [[ -x "$d/initdb" && -x "$d/pg_ctl" ]]; then
		echo "$d"
		return 0
	fi
	# Newest installed major version.
	for d in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -t/ -k5 -n -r); do
		if [[ -x "$d/initdb" && -x "$d/pg_ctl" ]]; then
			echo "$d"
			return 0
		fi
	done
	return 1
}

# The user the server runs as: empty when not root (run as ourselves).
_testpg_user() {
	if [[ "$(id -u)" != 0 ]]; then
		return 0
	fi
	if [[ -n "${TESTPG_USER:-}" ]]; then
		echo "$TESTPG_USER"
	elif id postgres >/dev/null 2>&1; then
		echo postgres
	else
		echo nobody
	fi
}

# _testpg_as USER CMD...: run CMD as USER (or as ourselves when USER is empty).
_testpg_as() {
	local user=$1
	shift
	if [[ -z "$user" ]]; then
		"$@"
	elif command -v runuser >/dev/null 2>&1; then
		runuser -u "$user" -- "$@"
	elif command -v setpriv >/dev/null 2>&1; then
		setpriv --reuid="$user" --regid="$(id -g "$user")" --clear-groups -- "$@"
	else
		su -s /bin/sh "$user" -c "$(printf '%q ' "$@")"
	fi
}

# A port nothing listens on now; pg_ctl start is retried if we lose a race.
_testpg_port() {
	local port _
	for _ in $(seq 1 100); do
		port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			echo "$port"
			return 0
		fi
	done
	echo "testpg: no free port found" >&2
	return 1
}

# Start a server; export TEST_DATABASE_URL and TESTPG_DIR.
testpg_start() {
	local bindir user dir port _
	if ! bindir=$(testpg_bindir); then
		echo "testpg: initdb/pg_ctl not found (install postgresql, or set TESTPG_BINDIR)" >&2
		return 1
	fi
	user=$(_testpg_user)
	dir=$(mktemp -d "${TMPDIR:-/tmp}/testpg.XXXXXX") || return 1
	touch "$dir/.testpg" # marks the directory as ours for testpg_stop
	chmod 700 "$dir"
	if [[ -n "$user" ]]; then
		chown -R "$user:" "$dir" || return 1
	fi
	echo "testpg: initdb $("$bindir/pg_ctl" --version) in $dir${user:+ as $user}" >&2
	# A working directory the server user may enter, so nothing warns.
	if ! (cd "$dir" && _testpg_as "$user" "$bindir/initdb" -D "$dir/data" -U postgres -A trust \
		-E UTF8 --locale=C --no-sync >"$dir/initdb.log" 2>&1); then
		cat "$dir/initdb.log" >&2
		rm -rf "$dir"
		return 1
	fi
	for _ in 1 2 3 4 5; do
		port=$(_testpg_port) || break
		if (cd "$dir" && _testpg_as "$user" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
			-o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
			start >"$dir/pg_ctl.log" 2>&1); then
			echo "$bindir" >"$dir/.bindir"
			echo "$user" >"$dir/.user"
			export TESTPG_DIR="$dir"
			export TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
			echo "testpg: PostgreSQL listening on 127.0.0.1:$port (TESTPG_DIR=$dir)" >&2
			return 0
		fi
		if ! grep -q "could not bind\|Address already in use" "$dir/server.log" 2>/dev/null; then
			break
		fi
		echo "testpg: port $port taken, retrying" >&2
	done
	echo "testpg: PostgreSQL did not start:" >&2
	cat "$dir/pg_ctl.log" "$dir/server.log" >&2 2>/dev/null || true
	rm -rf "$dir"
	return 1
}

# Stop the server in DIR (default $TESTPG_DIR) and delete DIR.
testpg_stop() {
	local dir=${1:-${TESTPG_DIR:-}}
	if [[ -z "$dir" ]]; then
		echo "testpg: nothing to stop (no TESTPG_DIR)" >&2
		return 0
	fi
	if [[ ! -f "$dir/.testpg" ]]; then
		echo "testpg: $dir was not made by testpg; not touching it" >&2
		return 1
	fi
	if [[ -f "$dir/data/postmaster.pid" ]]; then
		(cd "$dir" && _testpg_as "$(cat "$dir/.user" 2>/dev/null)" "$(cat "$dir/.bindir")/pg_ctl" \
			-D "$dir/data" -m immediate -w -t 30 stop >/dev/null 2>&1) ||
			echo "testpg: pg_ctl stop failed; see $dir/server.log" >&2
	fi
	rm -rf "$dir"
	if [[ "${TESTPG_DIR:-}" == "$dir" ]]; then
		unset TESTPG_DIR TEST_DATABASE_URL
	fi
	return 0
}

_testpg_main() {
	set -euo pipefail
	case "${1:-}" in
	start)
		testpg_start
		printf 'export TESTPG_DIR=%q\nexport TEST_DATABASE_URL=%q\n' "$TESTPG_DIR" "$TEST_DATABASE_URL"
		;;
	stop) testpg_stop "${2:-}" ;;
	bindir) testpg_bindir ;;
	*)
		echo "usage: $0 start | stop [DIR] | bindir   (or source it: testpg_start / testpg_stop)" >&2
		return 2
		;;
	esac
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
	_testpg_main "$@"
fi
