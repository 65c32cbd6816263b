#!/usr/bin/env bash
# Runs Patchward's whole test suite: installs what the tests need
# (scripts/setup.sh), starts a throw-away PostgreSQL so the storage
# conformance suite runs on both engines, then go vet and go test.
# Extra arguments go to `go test` (e.g. -run TestX, -v).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
# Debian installs PostgreSQL binaries outside PATH.
if ! command -v initdb >/dev/null 2>&1; then
  pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  export PATH="$pgbin:$PATH"
fi

if [ -z "${PATCHWARD_TEST_POSTGRES:-}" ]; then
  out=$(scripts/pg-start.sh)
  pgdir=$(sed -n 's/^PGDIR=//p' <<<"$out")
  export PATCHWARD_TEST_POSTGRES=$(sed -n 's/^PATCHWARD_TEST_POSTGRES=//p' <<<"$out")
  trap 'scripts/pg-start.sh stop "$pgdir"' EXIT
fi
export PATCHWARD_TEST_CHROMIUM=${PATCHWARD_TEST_CHROMIUM:-$(command -v chromium || true)}

go vet ./...
go test -count=1 -timeout 20m "$@" ./...
