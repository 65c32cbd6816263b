#!/usr/bin/env bash
# Starts a throw-away PostgreSQL server from the machine's initdb/pg_ctl in a
# temporary directory and prints the DSN on stdout. Stop it with
#   scripts/pg-start.sh stop DIR
set -euo pipefail
if [ "${1:-}" = "stop" ]; then
  dir=$2
  runuser_cmd=()
  [ "$(id -u)" = 0 ] && runuser_cmd=(runuser -u postgres --)
  "${runuser_cmd[@]}" pg_ctl -D "$dir/data" -m fast stop >/dev/null 2>&1 || true
  rm -rf "$dir"
  exit 0
fi
for b in initdb pg_ctl; do
  command -v "$b" >/dev/null || { echo "pg-start: $b not found; install PostgreSQL server binaries" >&2; exit 1; }
done
dir=$(mktemp -d /tmp/patchward-pg.XXXXXX)
port=${PGPORT_TEST:-$(( 20000 + RANDOM % 20000 ))}
as=()
if [ "$(id -u)" = 0 ]; then
  # initdb refuses to run as root.
  id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
  chown postgres "$dir"
  as=(runuser -u postgres --)
fi
"${as[@]}" initdb -D "$dir/data" -U patchward --auth=trust -E UTF8 >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
"${as[@]}" pg_ctl -D "$dir/data" -l "$dir/server.log" -w \
  -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" start >/dev/null \
  || { cat "$dir/server.log" >&2; exit 1; }
echo "PGDIR=$dir"
echo "PATCHWARD_TEST_POSTGRES=postgres://patchward@127.0.0.1:$port/postgres?sslmode=disable"
