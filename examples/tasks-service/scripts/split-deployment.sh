#!/usr/bin/env bash
# The tasks service as a split deployment on this machine: two `server` processes on two
# ports, two `worker`s and one `beat`, on PostgreSQL, RabbitMQ and Redis, each in a
# namespace of its own, with the web front end served by both servers.
#
#   split-deployment.sh start    build (unless TASKS_SERVICE_BIN is given), create the
#                                namespaces, declare, start the five processes, wait for them
#   split-deployment.sh stop     SIGTERM every process, then remove the namespaces and check
#                                that nothing is left: no process, vhost, queue, key or schema
#   split-deployment.sh status   what runs, where
#
# Namespaces: a RabbitMQ virtual host (its exchange, dlx/dlq and queues are deleted with it),
# a PostgreSQL schema, a Redis database number of its own (the beat's keys have the fixed
# names Python jararaca uses) with the service's keys under a prefix, and WebSocket pub/sub
# channels under a prefix (pub/sub is shared by every Redis database).
#
# Settings (environment): SPLIT_NAME (default tasks_split), SERVER_PORTS (default
# "8101 8102"), SPLIT_REDIS_DB (9; other tests of the workspace use 10–14), PG_URL (postgres://postgres@127.0.0.1:5432/test),
# REDIS_HOST_URL (redis://127.0.0.1:6379), AMQP_HOST_URL (amqp://guest:guest@127.0.0.1:5672),
# RABBITMQ_USER (guest), TASKS_SERVICE_BIN (a built binary), WEB (build: build the front end
# when npm is there | skip), SPLIT_STATE_DIR (target/tasks-split), NOTIFIER (1: run the
# notifier example too, on NOTIFIER_PORT, default 8103, from NOTIFIER_BIN or built), or
# NOTIFIER_URL (a notifier already running, which the workers tell about task events).
set -euo pipefail

HERE=$(cd "$(dirname "$0")/.." && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
STATE=${SPLIT_STATE_DIR:-$ROOT/target/tasks-split}
NAME=${SPLIT_NAME:-tasks_split}
SERVER_PORTS=${SERVER_PORTS:-"8101 8102"}
REDIS_DB=${SPLIT_REDIS_DB:-9}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432/test}
REDIS_HOST_URL=${REDIS_HOST_URL:-redis://127.0.0.1:6379}
AMQP_HOST_URL=${AMQP_HOST_URL:-amqp://guest:guest@127.0.0.1:5672}
RABBITMQ_USER=${RABBITMQ_USER:-guest}
WEB=${WEB:-build}

say() { echo "split-deployment: $*"; }
fail() { echo "split-deployment: $*" >&2; exit 1; }

case "$NAME" in
  *[!a-z0-9_]* | "") fail "SPLIT_NAME must be lowercase letters, digits and _: $NAME" ;;
esac

redis() { redis-cli -u "$REDIS_HOST_URL/$REDIS_DB" --no-auth-warning "$@"; }
pg() { PGOPTIONS="-c client_min_messages=warning" psql "$PG_URL" -v ON_ERROR_STOP=1 -qtAX "$@"; }

# The environment every process of the deployment runs with, quoted for `.`.
deployment_env() {
  local separator="?"
  case "$PG_URL" in *\?*) separator="&" ;; esac
  local var
  for var in \
    "DATABASE_URL=$PG_URL${separator}options=-c%20search_path%3D$NAME" \
    "AMQP_URL=$AMQP_HOST_URL/$NAME?exchange=tasks&prefetch_count=16" \
    "REDIS_URL=$REDIS_HOST_URL/$REDIS_DB" \
    "REDIS_KEY_PREFIX=$NAME:" \
    "WEBSOCKET_CHANNEL_PREFIX=$NAME:websocket" \
    "WEB_DIST=$HERE/web/dist" \
    "JWT_SECRET=${JWT_SECRET:-$NAME-secret-$(date +%s%N)}" \
    "RUST_LOG=${RUST_LOG:-info}" \
    "NO_COLOR=1"; do
    printf '%s=%q\n' "${var%%=*}" "${var#*=}"
  done
  if [ -n "${NOTIFIER_URL:-}" ]; then
    printf 'NOTIFIER_URL=%q\n' "$NOTIFIER_URL"
  fi
}

alive() { kill -0 "$1" 2>/dev/null; }

start() {
  [ -e "$STATE/deployment.env" ] && fail "already started (state in $STATE): stop it first"
  for tool in psql redis-cli rabbitmqctl curl; do
    command -v "$tool" >/dev/null || fail "$tool is not installed"
  done
  local bin=${TASKS_SERVICE_BIN:-}
  if [ -z "$bin" ]; then
    (cd "$ROOT" && cargo build -q -p tasks-service)
    bin=${CARGO_TARGET_DIR:-$ROOT/target}/debug/tasks-service
  fi
  [ -x "$bin" ] || fail "no tasks-service binary at $bin"
  if [ "$WEB" = build ]; then
    if command -v npm >/dev/null; then
      bash "$HERE/scripts/build-web.sh"
    else
      say "npm is not installed: serving no front end"
    fi
  fi

  local keys
  keys=$(redis DBSIZE) || fail "Redis is not reachable at $REDIS_HOST_URL"
  [ "$keys" = 0 ] || fail "Redis database $REDIS_DB holds $keys keys: pick another SPLIT_REDIS_DB"
  if rabbitmqctl -q list_vhosts | grep -qx "$NAME"; then
    fail "RabbitMQ already has a vhost $NAME: stop the deployment that made it"
  fi
  mkdir -p "$STATE/logs"
  : > "$STATE/pids"
  launch() { # name, binary, args…
    local name=$1; shift
    nohup "$@" > "$STATE/logs/$name.log" 2>&1 &
    echo "$name $!" >> "$STATE/pids"
  }
  if [ "${NOTIFIER:-}" = 1 ] && [ -z "${NOTIFIER_URL:-}" ]; then
    local notifier=${NOTIFIER_BIN:-}
    if [ -z "$notifier" ]; then
      (cd "$ROOT" && cargo build -q -p notifier)
      notifier=${CARGO_TARGET_DIR:-$ROOT/target}/debug/notifier
    fi
    local notifier_port=${NOTIFIER_PORT:-8103}
    launch notifier "$notifier" server --host 127.0.0.1 --port "$notifier_port"
    NOTIFIER_URL=http://127.0.0.1:$notifier_port
  fi
  deployment_env > "$STATE/deployment.env"
  printf '%s\n' "BIN=$bin" "NAME=$NAME" "REDIS_DB=$REDIS_DB" > "$STATE/namespaces"

  say "namespaces: RabbitMQ vhost $NAME, PostgreSQL schema $NAME, Redis db $REDIS_DB"
  rabbitmqctl -q add_vhost "$NAME" >/dev/null
  rabbitmqctl -q set_permissions -p "$NAME" "$RABBITMQ_USER" ".*" ".*" ".*" >/dev/null
  pg -c "CREATE SCHEMA $NAME"

  set -a
  # shellcheck disable=SC1091
  . "$STATE/deployment.env"
  set +a
  "$bin" declare > "$STATE/logs/declare.log" 2>&1 || {
    cat "$STATE/logs/declare.log" >&2
    fail "declare failed"
  }

  local i=1
  for port in $SERVER_PORTS; do
    launch "server$i" "$bin" server --host 127.0.0.1 --port "$port"
    i=$((i + 1))
  done
  launch worker1 "$bin" worker
  launch worker2 "$bin" worker
  launch beat "$bin" beat --interval 1

  # Ready: every process logged `started` (the notifier, `listening`), every server answers
  # /health/ready.
  local deadline=$((SECONDS + 90))
  while read -r name pid; do
    until grep -Eq "started|listening" "$STATE/logs/$name.log" 2>/dev/null; do
      alive "$pid" || { cat "$STATE/logs/$name.log" >&2; fail "$name exited while starting"; }
      [ $SECONDS -lt $deadline ] || fail "$name did not start within 90 s (log: $STATE/logs/$name.log)"
      sleep 0.2
    done
  done < "$STATE/pids"
  for port in $SERVER_PORTS; do
    until curl -sf "http://127.0.0.1:$port/health/ready" >/dev/null; do
      [ $SECONDS -lt $deadline ] || fail "the server on $port is not ready"
      sleep 0.2
    done
  done
  status
}

status() {
  [ -e "$STATE/pids" ] || { say "not started"; return 0; }
  while read -r name pid; do
    if alive "$pid"; then say "$name (pid $pid) running"; else say "$name (pid $pid) exited"; fi
  done < "$STATE/pids"
  for port in $SERVER_PORTS; do
    say "http://127.0.0.1:$port/ (front end, when built), /docs, /ws/tasks"
  done
  say "logs in $STATE/logs"
}

stop() {
  [ -e "$STATE/namespaces" ] || { say "not started"; return 0; }
  # shellcheck disable=SC1091
  . "$STATE/namespaces"
  local problems=0
  if [ -e "$STATE/pids" ]; then
    while read -r name pid; do
      alive "$pid" && kill -TERM "$pid"
    done < "$STATE/pids"
    local deadline=$((SECONDS + 30))
    while read -r name pid; do
      while alive "$pid" && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
      if alive "$pid"; then
        say "$name (pid $pid) ignored SIGTERM for 30 s: killing it"
        kill -KILL "$pid" || true
        problems=1
      else
        say "$name stopped"
      fi
    done < "$STATE/pids"
  fi

  rabbitmqctl -q delete_vhost "$NAME" >/dev/null 2>&1 || true
  pg -c "DROP SCHEMA IF EXISTS $NAME CASCADE"
  # Every key the deployment writes: the service's own, then the beat's and the delayed
  # messages' fixed names. Whatever else is found below is reported, not deleted.
  for pattern in "$NAME:*" beat_lock 'last_dispatch_time:*' 'in_execution:*' \
    delayed_messages 'delayed_messages_metadata:*'; do
    redis --scan --pattern "$pattern" | while read -r key; do redis DEL "$key" >/dev/null; done
  done

  # Nothing left behind.
  if [ -e "$STATE/pids" ]; then
    while read -r name pid; do
      if alive "$pid"; then say "left behind: $name (pid $pid)"; problems=1; fi
    done < "$STATE/pids"
  fi
  if rabbitmqctl -q list_vhosts | grep -qx "$NAME"; then
    say "left behind: RabbitMQ vhost $NAME"; problems=1
  fi
  local left
  left=$(redis DBSIZE)
  if [ "$left" != 0 ]; then
    say "left behind: $left Redis keys in db $REDIS_DB: $(redis --scan | head -n 5 | tr '\n' ' ')"
    problems=1
  fi
  left=$(redis PUBSUB CHANNELS "$NAME:*" | grep -c . || true)
  if [ "$left" != 0 ]; then
    say "left behind: $left subscribed Redis channels $NAME:*"; problems=1
  fi
  left=$(pg -c "SELECT count(*) FROM information_schema.schemata WHERE schema_name = '$NAME'")
  if [ "$left" != 0 ]; then
    say "left behind: PostgreSQL schema $NAME"; problems=1
  fi
  rm -f "$STATE/pids" "$STATE/namespaces" "$STATE/deployment.env"
  [ $problems = 0 ] || fail "stopped, but not cleanly (logs in $STATE/logs)"
  say "stopped: no process, vhost, queue, key, channel or schema left"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) fail "usage: $0 start|stop|status" ;;
esac
