#!/usr/bin/env bash
# Load run: JWT-verified Jira webhooks against the built connect binary on a
# throwaway PostgreSQL (scripts/testpg.sh). Builds ./bin/connect and
# ./bin/loadgen, creates a fresh database "bench" and, with `connect tenants
# create`, one tenant per 10 sites, starts loadgen (which plays Jira:
# install-keys server, N installed sites, pre-signed HS256 webhooks), starts
# the service pointed at loadgen's install-keys server, lets loadgen install
# the sites, link each to an integration through the public API (Connect
# keys) and run the load, then reads the service's peak RSS (VmHWM) before
# stopping it. Everything started here is stopped on exit. Exits non-zero if
# any request failed.
#
#   scripts/bench-webhooks.sh          (or: make bench-load)
#
# Settings (environment):
#   BENCH_SITES        installed sites, webhooks round robin over them (50)
#   BENCH_LINK         1: link the sites, so webhooks are stored and their
#                      jobs enqueued (and run) as in production; 0: leave
#                      them unlinked, webhooks acknowledged and dropped (1)
#   BENCH_CONCURRENCY  keep-alive connections (64)
#   BENCH_DURATION     measured duration (20s)
#   BENCH_WARMUP       warm-up before measuring (5s)
#   BENCH_LOG_LEVEL    the service's LOG_LEVEL (warn: no access log lines)
#   BENCH_PORT         the service's port (default: a free one)
#   BENCH_KEEP=1       keep the work directory (logs, loadgen output)
#   GO                 the go command (go)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
GO=${GO:-go}
SITES=${BENCH_SITES:-50}
CONCURRENCY=${BENCH_CONCURRENCY:-64}
DURATION=${BENCH_DURATION:-20s}
WARMUP=${BENCH_WARMUP:-5s}
LOG_LEVEL=${BENCH_LOG_LEVEL:-warn}
LINK=${BENCH_LINK:-1}

say() { echo "bench: $*" >&2; }

free_port() {
	local port _
	for _ in $(seq 1 100); do
		port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			echo "$port"
			return 0
		fi
	done
	say "no free port found"
	return 1
}

work=""
loadgen_pid=""
connect_pid=""
cleanup() {
	local rc=$?
	set +e
	for pid in $loadgen_pid $connect_pid; do
		if kill -0 "$pid" 2>/dev/null; then
			kill -TERM "$pid" 2>/dev/null
			for _ in $(seq 1 50); do
				kill -0 "$pid" 2>/dev/null || break
				sleep 0.1
			done
			kill -KILL "$pid" 2>/dev/null
		fi
		wait "$pid" 2>/dev/null
	done
	if [[ -n "${TESTPG_DIR:-}" ]]; then
		testpg_stop
	fi
	if [[ -n "$work" ]]; then
		if [[ "${BENCH_KEEP:-}" == 1 ]]; then
			say "kept $work"
		else
			rm -rf "$work"
		fi
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'say "failed (exit $?) at line $LINENO: $BASH_COMMAND"' ERR
trap 'exit 130' INT
trap 'exit 143' TERM

# The machine and the code, so the figures can be put in context.
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
dirty=$(git status --porcelain 2>/dev/null | awk '{print $2}')
if [[ -n "$dirty" ]]; then
	commit="$commit + uncommitted: $(head -n 8 <<<"$dirty" | tr '\n' ' ')"
	if (($(wc -l <<<"$dirty") > 8)); then
		commit="$commit..."
	fi
fi
cpu=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
echo "date         $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "commit       $commit"
echo "go           $($GO version)"
echo "machine      $(nproc) CPUs, ${cpu:-unknown CPU}, $(awk '/MemTotal/ {printf "%.0f GiB RAM", $2/1048576}' /proc/meminfo), $(uname -sr)"

say "building ./bin/connect and ./bin/loadgen"
$GO build -o bin/connect ./cmd/connect
$GO build -o bin/loadgen ./cmd/loadgen

work=$(mktemp -d "${TMPDIR:-/tmp}/bench-webhooks.XXXXXX")

# shellcheck source=scripts/testpg.sh
source scripts/testpg.sh
testpg_start
psql=$(command -v psql || echo "$(testpg_bindir)/psql")
"$psql" "$TEST_DATABASE_URL" -v ON_ERROR_STOP=1 -qc 'CREATE DATABASE bench'
bench_url=${TEST_DATABASE_URL/\/postgres\?/\/bench?}
if [[ "$bench_url" == "$TEST_DATABASE_URL" ]]; then
	say "cannot derive the bench database URL from $TEST_DATABASE_URL"
	exit 1
fi
echo "postgres     $("$psql" "$TEST_DATABASE_URL" -tAc 'SHOW server_version') (scripts/testpg.sh: fsync=off, synchronous_commit=off)"

port=${BENCH_PORT:-$(free_port)}
base="http://127.0.0.1:$port"
keys=$(./bin/connect keygen)

# The service's environment: nothing from this shell's but PATH and HOME.
# An array, not a function: env execs the binary, so `$!` below is the
# service's own pid (for its CPU, its VmHWM and its SIGTERM).
connect_env=(env -i PATH="$PATH" HOME="${HOME:-/tmp}"
	APP_ENV=production
	DATABASE_URL="$bench_url"
	BASE_URL="$base"
	LISTEN_ADDR="127.0.0.1:$port"
	LOG_LEVEL="$LOG_LEVEL"
	ENCRYPTION_KEYS="$keys"
	JIRA_HOST_ALLOWLIST=127.0.0.1
	DATA_DIR="$work/data")

# Tenants for the links, as an operator makes them (this also migrates the
# database). Their API keys go to loadgen in a file, never on a command line.
link_args=()
if [[ "$LINK" == 1 ]]; then
	tenants=$(((SITES + 9) / 10))
	say "creating $tenants tenants for the links"
	(umask 077 && : >"$work/api-keys")
	for i in $(seq 1 "$tenants"); do
		"${connect_env[@]}" ./bin/connect tenants create --name "loadgen $i" 2>>"$work/admin.log" |
			sed -n 's/.*"api_key":"\([^"]*\)".*/\1/p' >>"$work/api-keys"
	done
	if (($(wc -l <"$work/api-keys") != tenants)); then
		say "tenants create did not print $tenants API keys; its log:"
		cat "$work/admin.log" >&2
		exit 1
	fi
	link_args=(-api-keys-file "$work/api-keys")
fi

# loadgen first: it owns the install-keys server whose URL the service needs.
./bin/loadgen -base "$base" -keys-url-file "$work/keys-url" -server-pid-file "$work/connect.pid" \
	-sites "$SITES" -concurrency "$CONCURRENCY" -duration "$DURATION" -warmup "$WARMUP" "${link_args[@]}" \
	-pg-stats "$TEST_DATABASE_URL" -pg-db bench -pg-pid-file "$TESTPG_DIR/data/postmaster.pid" >"$work/loadgen.out" &
loadgen_pid=$!
for _ in $(seq 1 300); do
	[[ -s "$work/keys-url" ]] && break
	if ! kill -0 "$loadgen_pid" 2>/dev/null; then
		say "loadgen exited before publishing its install-keys URL"
		exit 1
	fi
	sleep 0.1
done
if [[ ! -s "$work/keys-url" ]]; then
	say "loadgen did not publish its install-keys URL"
	exit 1
fi

"${connect_env[@]}" CONNECT_INSTALL_KEYS_URL="$(cat "$work/keys-url")" ./bin/connect serve 2>"$work/connect.log" &
connect_pid=$!
echo "$connect_pid" >"$work/connect.pid.tmp" && mv "$work/connect.pid.tmp" "$work/connect.pid"
say "connect (pid $connect_pid) at $base, LOG_LEVEL=$LOG_LEVEL; loadgen (pid $loadgen_pid) installs $SITES sites (BENCH_LINK=$LINK), then $CONCURRENCY connections for $WARMUP + $DURATION"

set +e
wait "$loadgen_pid"
loadgen_rc=$?
set -e
loadgen_pid=""

if ! kill -0 "$connect_pid" 2>/dev/null; then
	say "connect is not running any more; its log:"
	cat "$work/connect.log" >&2
	exit 1
fi
# What became of the stored webhooks: the jobs run while the load runs (and
# after, until SIGTERM), so the backlog shows how far behind they fell.
events=$("$psql" "$bench_url" -tAc "SELECT count(*) || ' stored, ' || count(processed_at) || ' processed' FROM webhook_events")
jobs=$("$psql" "$bench_url" -tAc "SELECT coalesce(string_agg(state || ' ' || n, ', ' ORDER BY state), 'none') FROM (SELECT state, count(*) AS n FROM river_job WHERE kind = 'webhook' GROUP BY state) s")
hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$connect_pid/status")
rss=$(awk '/^VmRSS/ {print $2}' "/proc/$connect_pid/status")
threads=$(awk '/^Threads/ {print $2}' "/proc/$connect_pid/status")
kill -TERM "$connect_pid"
set +e
wait "$connect_pid"
connect_rc=$?
set -e
connect_pid=""

echo
cat "$work/loadgen.out"
echo "server rss   peak (VmHWM) $((hwm / 1024)) MiB, at the end (VmRSS) $((rss / 1024)) MiB, $threads threads; exit status $connect_rc after SIGTERM"
log_lines=$(wc -l <"$work/connect.log")
echo "webhooks     $events when loadgen ended (its counters settle for -stats-settle after the load); webhook jobs by state: $jobs"
echo "server log   $log_lines lines at LOG_LEVEL=$LOG_LEVEL"
if ((log_lines > 0)); then
	head -n 5 "$work/connect.log" | sed 's/^/             /'
fi

# A row for BENCHMARKS.md.
result=$(grep '^RESULT ' "$work/loadgen.out" || true)
get() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$result"; }
if [[ -n "$result" ]]; then
	echo
	echo "| linked | req/s | p50 | p90 | p99 | max | errors | peak RSS | cores: server / loadgen / PostgreSQL / other | server CPU per request | DB xacts per 1000 webhooks | DB sessions opened |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	echo "| $(get linked) | $(get rps) | $(get p50_ms) ms | $(get p90_ms) ms | $(get p99_ms) ms | $(get max_ms) ms | $(get errors) | $((hwm / 1024)) MiB | $(get server_cores) / $(get loadgen_cores) / $(get pg_cores) / $(get other_cores) | $(get server_us_per_req) µs | $(get db_xacts_per_1k) | $(get db_sessions) |"
fi
echo
echo "reproduce    BENCH_SITES=$SITES BENCH_LINK=$LINK BENCH_CONCURRENCY=$CONCURRENCY BENCH_DURATION=$DURATION BENCH_WARMUP=$WARMUP BENCH_LOG_LEVEL=$LOG_LEVEL make bench-load"
if ((loadgen_rc != 0)); then
	say "LOADGEN FAILED (exit $loadgen_rc): the figures above are not valid"
	exit "$loadgen_rc"
fi
