#!/usr/bin/env bash
# Make sure the services the tests talk to are up on this machine:
#   PostgreSQL on 127.0.0.1:5432 (trust auth for local connections, user postgres)
#   Redis      on 127.0.0.1:6379 (nothing kept on disk)
# Already running: nothing is changed. Missing: the Debian packages are installed
# (apt-get), the server is started, and the script waits until it answers.
# Needs root (or password-less sudo) only when something has to be installed or started.
# EXPSYNC_PG_PORT / EXPSYNC_PG_CLUSTER / EXPSYNC_REDIS_PORT override the defaults (used to
# exercise this script beside the running services; the tests themselves use the defaults).
set -euo pipefail

PG_HOST=127.0.0.1
PG_PORT=${EXPSYNC_PG_PORT:-5432}
PG_CLUSTER=${EXPSYNC_PG_CLUSTER:-main}
REDIS_HOST=127.0.0.1
REDIS_PORT=${EXPSYNC_REDIS_PORT:-6379}

log() { echo "services: $*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo -n "$@"
  else
    log "root is needed to run: $*"
    return 1
  fi
}

as_postgres() {
  if command -v runuser >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    as_root su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
  fi
}

APT_UPDATED=0
apt_install() {
  if [ "$APT_UPDATED" = 0 ]; then
    log "apt-get update"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
    APT_UPDATED=1
  fi
  log "apt-get install $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null
}

pg_ready() { command -v pg_isready >/dev/null 2>&1 && pg_isready -q -h "$PG_HOST" -p "$PG_PORT"; }
redis_ready() {
  command -v redis-cli >/dev/null 2>&1 && [ "$(redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]
}

wait_for() {
  local what=$1 check=$2
  for _ in $(seq 1 120); do
    if "$check"; then
      log "$what is ready"
      return 0
    fi
    sleep 0.5
  done
  log "$what did not become ready within 60 s"
  return 1
}

# Trust local and loopback connections (a cluster this script created or installed only).
pg_trust_loopback() {
  local hba=$1
  as_root sh -c "cat > '$hba'" <<'HBA'
# Written by expsync scripts/services.sh: a throwaway test server, loopback only.
local   all   all                 trust
host    all   all   127.0.0.1/32  trust
host    all   all   ::1/128       trust
HBA
}

start_postgres() {
  if pg_ready; then
    log "PostgreSQL is up on $PG_HOST:$PG_PORT"
    return 0
  fi
  local fresh=0
  if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    apt_install postgresql
    fresh=1
  fi
  local ver
  ver=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
  as_root install -d -o postgres -g postgres -m 2775 /var/run/postgresql

  if command -v pg_ctlcluster >/dev/null 2>&1; then
    local conf="/etc/postgresql/$ver/$PG_CLUSTER"
    if [ ! -d "$conf" ]; then
      log "creating PostgreSQL $ver cluster '$PG_CLUSTER'"
      as_root pg_createcluster "$ver" "$PG_CLUSTER" --port="$PG_PORT" >/dev/null
      fresh=1
    fi
    local running=0
    as_root pg_ctlcluster --skip-systemctl-redirect "$ver" "$PG_CLUSTER" status >/dev/null 2>&1 && running=1
    if [ "$fresh" = 1 ]; then
      pg_trust_loopback "$conf/pg_hba.conf"
      as_root sh -c "echo \"listen_addresses = '$PG_HOST'\" > '$conf/conf.d/expsync-test.conf'"
      if [ "$running" = 1 ]; then
        # the package install started it with Debian's default auth: restart to apply ours
        log "restarting PostgreSQL $ver/$PG_CLUSTER"
        as_root pg_ctlcluster --skip-systemctl-redirect "$ver" "$PG_CLUSTER" restart
        running=2
      fi
    fi
    if [ "$running" = 0 ]; then
      log "starting PostgreSQL $ver/$PG_CLUSTER"
      as_root pg_ctlcluster --skip-systemctl-redirect "$ver" "$PG_CLUSTER" start
    fi
  else
    # No postgresql-common: a plain cluster under /var/lib/postgresql/expsync-test.
    local bin="/usr/lib/postgresql/$ver/bin" data=/var/lib/postgresql/expsync-test
    if [ ! -f "$data/PG_VERSION" ]; then
      log "initdb $data"
      as_root install -d -o postgres -g postgres -m 700 "$data"
      as_postgres "$bin/initdb" -D "$data" -U postgres --auth=trust >/dev/null
      pg_trust_loopback "$data/pg_hba.conf"
    fi
    log "starting PostgreSQL $ver ($data)"
    as_postgres "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w \
      -o "-c listen_addresses=$PG_HOST -p $PG_PORT" start >/dev/null
  fi
  wait_for PostgreSQL pg_ready
}

start_redis() {
  if redis_ready; then
    log "Redis is up on $REDIS_HOST:$REDIS_PORT"
    return 0
  fi
  if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
    apt_install redis-server
  fi
  # A package install may have started one already.
  if ! redis_ready; then
    log "starting Redis"
    redis-server --daemonize yes --bind "$REDIS_HOST" --port "$REDIS_PORT" --save "" --appendonly no >/dev/null
  fi
  wait_for Redis redis_ready
}

start_postgres
start_redis
