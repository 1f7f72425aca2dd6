#!/bin/sh
# A throw-away PostgreSQL server for the tests of fits to database tables.
#
#   eval "$(sh tools/postgres.sh start)"   # prints export MLMFIT_PG_HOST=... MLMFIT_PG_PORT=... MLMFIT_PG_DIR=...
#   sh tools/postgres.sh stop              # stops the server of MLMFIT_PG_DIR and removes its files
#
# `start` makes a cluster with initdb in a new temporary directory and runs
# it with pg_ctl on a free port, listening on localhost only, trust
# authentication for the user postgres. PostgreSQL refuses to run as root:
# as root, the server runs as the system user postgres (Debian's
# postgresql package makes it). Needs Debian's postgresql (initdb and
# pg_ctl under /usr/lib/postgresql/<version>/bin, or on the PATH).
set -eu

pg_bin() {
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -n "$dir" ] && [ -x "$dir/initdb" ]; then echo "$dir"; return; fi
  initdb=$(command -v initdb || true)
  if [ -n "$initdb" ]; then dirname "$initdb"; return; fi
  echo "tools/postgres.sh: PostgreSQL's initdb was not found (apt-get install postgresql)" >&2
  exit 1
}

as_server_user() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "${1:-}" in
start)
  bin=$(pg_bin)
  dir=$(mktemp -d /tmp/mlmfit-pg.XXXXXX)
  chmod 755 "$dir"
  [ "$(id -u)" -eq 0 ] && chown postgres "$dir"
  as_server_user "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 || {
    cat "$dir/initdb.log" >&2; rm -rf "$dir"; exit 1; }
  for attempt in 1 2 3 4 5 6 7 8; do
    port=$(( 20000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 30000 ))
    if as_server_user "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
         -o "-c listen_addresses=localhost -p $port -k $dir -c fsync=off" start >/dev/null 2>&1; then
      echo "export MLMFIT_PG_HOST=localhost MLMFIT_PG_PORT=$port MLMFIT_PG_DIR=$dir"
      exit 0
    fi
  done
  cat "$dir/server.log" >&2
  rm -rf "$dir"
  echo "tools/postgres.sh: the server did not start" >&2
  exit 1
  ;;
stop)
  dir=${MLMFIT_PG_DIR:-}
  [ -n "$dir" ] && [ -d "$dir/data" ] || exit 0
  as_server_user "$(pg_bin)/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$dir"
  ;;
*)
  echo "usage: sh tools/postgres.sh start|stop" >&2
  exit 2
  ;;
esac
