#!/usr/bin/env bash
# Run a command (usually `go test ...`) with TEST_DATABASE_URL pointing at
# PostgreSQL, so storage tests run on both databases:
#   - TEST_DATABASE_URL already set: use it as is;
#   - else, PostgreSQL binaries installed: start a throwaway server with
#     scripts/testpg.sh for the duration of the command;
#   - else: run the command anyway; PostgreSQL tests are skipped, said loudly.
#
#   scripts/with-testpg.sh go test -race ./internal/store/...
set -euo pipefail

if (($# == 0)); then
	echo "usage: $0 COMMAND [ARG...]" >&2
	exit 2
fi
if [[ -n "${TEST_DATABASE_URL:-}" ]]; then
	exec "$@"
fi

# shellcheck source=scripts/testpg.sh
source "$(dirname "${BASH_SOURCE[0]}")/testpg.sh"

if ! testpg_bindir >/dev/null 2>&1; then
	{
		echo "=================================================================="
		echo "with-testpg: PostgreSQL binaries (initdb, pg_ctl) not found:"
		echo "PostgreSQL tests will be SKIPPED. Install postgresql, set"
		echo "TESTPG_BINDIR, or set TEST_DATABASE_URL (see scripts/testpg.sh)."
		echo "=================================================================="
	} >&2
	exec "$@"
fi

testpg_start
trap 'testpg_stop' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
"$@"
