# Throw-away PostgreSQL 15 from the machine's binaries, on a free loopback port.
# Source this file, then: pg_start [extra postgres -c settings...]; it exports PG_URL; pg_stop removes it.
# initdb refuses to run as root, so as root the server runs as the `postgres` system user.

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}

as_postgres() {
  if [ "$(id -u)" = 0 ]; then
    su postgres -s /bin/sh -c "$*"
  else
    sh -c "$*"
  fi
}

pg_start() {
  if [ ! -x "$PG_BIN/initdb" ]; then
    echo "PostgreSQL 15 binaries not found in $PG_BIN" >&2
    return 1
  fi
  PG_DIR=$(mktemp -d /tmp/payhook-pg.XXXXXX)
  chmod 755 "$PG_DIR"
  [ "$(id -u)" = 0 ] && chown postgres: "$PG_DIR"
  PG_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  PG_OPTS="-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c max_connections=400 $*"
  echo "$PG_OPTS" > "$PG_DIR/opts"
  as_postgres "'$PG_BIN/initdb' -D '$PG_DIR/data' -U postgres -A trust -E UTF8 --no-sync" > "$PG_DIR/initdb.log" 2>&1 \
    || { cat "$PG_DIR/initdb.log" >&2; return 1; }
  pg_resume
  export PG_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
  echo "PostgreSQL 15 on 127.0.0.1:$PG_PORT (data in $PG_DIR)"
}

# The server of PG_DIR, stopped (fast: sessions are cut) and started again with its options, for the
# tests of an outage.
pg_halt() {
  as_postgres "'$PG_BIN/pg_ctl' -D '$PG_DIR/data' -m fast -w stop" > /dev/null
}

pg_resume() {
  as_postgres "'$PG_BIN/pg_ctl' -D '$PG_DIR/data' -l '$PG_DIR/server.log' -o '$(cat "$PG_DIR/opts")' -w -t 60 start" > /dev/null \
    || { cat "$PG_DIR/server.log" >&2; return 1; }
}

pg_stop() {
  [ -n "${PG_DIR:-}" ] || return 0
  as_postgres "'$PG_BIN/pg_ctl' -D '$PG_DIR/data' -m immediate stop" > /dev/null 2>&1 || true
  rm -rf "$PG_DIR"
  PG_DIR=
}
