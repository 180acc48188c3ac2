#!/usr/bin/env bash
# Make sure MariaDB, PostgreSQL and Redis answer on loopback; start any that is installed
# but not running. Install them first if they are missing (see README, "Running the tests").
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

status=0
ensure MariaDB 3306 \
  'start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd' || status=1
ensure PostgreSQL 5432 \
  'pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql | head -n1) main start' || status=1
ensure Redis 6379 \
  'mkdir -p /var/lib/redis /var/log/redis && redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log' \
  || status=1
exit $status
