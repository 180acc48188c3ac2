#!/usr/bin/env bash
# Make sure MariaDB, PostgreSQL, Redis and RabbitMQ answer on loopback; start any that is
# installed but not running. RabbitMQ (the second Celery broker the end-to-end tests run
# on) is installed with apt when missing; install the others first (see docs/testing.md, "Running
# the tests").
set -uo pipefail

port_open() {
  python3 - "$1" "$2" <<'PY'
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1).close()
except OSError:
    sys.exit(1)
PY
}

ensure() {
  local name=$1 port=$2 start=$3
  if port_open 127.0.0.1 "$port"; then
    echo "services: $name is up on port $port"
    return 0
  fi
  echo "services: starting $name"
  bash -c "$start" || { echo "services: could not start $name ($start)" >&2; return 1; }
  for _ in $(seq 1 60); do
    port_open 127.0.0.1 "$port" && { echo "services: $name is up on port $port"; return 0; }
    sleep 1
  done
  echo "services: $name did not come up on port $port" >&2
  return 1
}

# RabbitMQ: installed by package name when missing (its post-install may not start it in
# a container), then started in the background, listening on loopback only.
install_rabbitmq() {
  command -v rabbitmq-server >/dev/null 2>&1 && return 0
  echo "services: installing rabbitmq-server"
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    rabbitmq-server >/dev/null
}

start_rabbitmq() {
  mkdir -p /etc/rabbitmq
  [ -f /etc/rabbitmq/rabbitmq.conf ] || \
    echo "listeners.tcp.local = 127.0.0.1:5672" > /etc/rabbitmq/rabbitmq.conf
  # Long windows hold their message unacknowledged (acks_late): see docs/deployment.md.
  grep -q '^consumer_timeout' /etc/rabbitmq/rabbitmq.conf || \
    echo "consumer_timeout = 36000000" >> /etc/rabbitmq/rabbitmq.conf
  if command -v service >/dev/null 2>&1 && service rabbitmq-server start >/dev/null 2>&1; then
    return 0
  fi
  su rabbitmq -s /bin/sh -c 'rabbitmq-server -detached' 2>/dev/null || rabbitmq-server -detached
}

status=0
ensure MariaDB 3306 \
  'start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd' || status=1
ensure PostgreSQL 5432 \
  'pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql | head -n1) main start' || status=1
ensure Redis 6379 \
  'mkdir -p /var/lib/redis /var/log/redis && redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log' \
  || status=1
export -f start_rabbitmq
port_open 127.0.0.1 5672 || install_rabbitmq \
  || { echo "services: could not install RabbitMQ" >&2; status=1; }
ensure RabbitMQ 5672 start_rabbitmq || status=1
exit $status
