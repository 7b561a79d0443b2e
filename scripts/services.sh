#!/usr/bin/env bash
# Makes sure PostgreSQL, Redis and RabbitMQ are up on loopback, starting any that stopped.
set -uo pipefail

wait_for() { # name, check command
  local name=$1; shift
  for _ in $(seq 1 180); do
    if "$@" >/dev/null 2>&1; then echo "services: $name is up"; return 0; fi
    sleep 1
  done
  echo "services: $name did not come up" >&2
  return 1
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if ! port_open 5432; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
fi
if ! port_open 6379; then
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
fi
if ! port_open 5672; then
  rabbitmq-server -detached || true
fi

status=0
wait_for PostgreSQL port_open 5432 || status=1
wait_for Redis port_open 6379 || status=1
wait_for RabbitMQ port_open 5672 || status=1
exit $status
