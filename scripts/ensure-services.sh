#!/usr/bin/env bash
# Make sure what the test suite talks to is installed and running: Redis on 127.0.0.1:6379 and
# PostgreSQL on 127.0.0.1:5432 (user postgres, trust), Debian's Chromium for the browser tests and
# Debian's nginx for the proxy tests (which start their own nginx processes), and nchan
# (libnginx-mod-nchan), the benchmark's peer.
# Installs Debian packages where missing. Idempotent: a service already up is left alone.
# Usage: scripts/ensure-services.sh [redis] [postgres] [chromium] [nginx] [nchan]   (default: all)
set -euo pipefail

wanted=("$@")
[ ${#wanted[@]} -eq 0 ] && wanted=(redis postgres chromium nginx nchan)

say() { printf '[services] %s\n' "$*"; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

apt_install() {
  say "installing $* (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null || true
  apt-get install -y -qq "$@" >/dev/null
}

wait_port() {
  for _ in $(seq 1 100); do port_open "$1" && return 0; sleep 0.1; done
  say "port $1 did not open"; return 1
}

ensure_redis() {
  if port_open 6379; then say "redis: up"; return; fi
  command -v redis-server >/dev/null || apt_install redis-server
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_port 6379 && say "redis: started"
}

ensure_postgres() {
  if port_open 5432; then say "postgres: up"; return; fi
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    apt_install postgresql
  fi
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  # Trust local connections as the test suite expects (user postgres, no password).
  local hba="/etc/postgresql/$version/main/pg_hba.conf"
  if ! grep -q "^host all all 127.0.0.1/32 trust" "$hba"; then
    sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\nlocal all all trust' "$hba"
  fi
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
  wait_port 5432 && say "postgres: started"
}

# Browser tests drive Debian's build at /usr/bin/chromium: Playwright's own browser download
# is not reachable from CI.
ensure_chromium() {
  if [ -x /usr/bin/chromium ]; then say "chromium: installed"; return; fi
  apt_install chromium
  [ -x /usr/bin/chromium ] && say "chromium: installed"
}

# Installed only: the tests run deploy/nginx.conf in processes of their own.
ensure_nginx() {
  if command -v nginx >/dev/null || [ -x /usr/sbin/nginx ]; then say "nginx: installed"; return; fi
  apt_install nginx
  # Debian's package may start a system nginx on port 80: the tests do not need it.
  if command -v service >/dev/null; then service nginx stop >/dev/null 2>&1 || true; fi
  say "nginx: installed"
}

# Installed only: the benchmark starts nginx with nchan on a config of its own.
ensure_nchan() {
  if [ -f /usr/lib/nginx/modules/ngx_nchan_module.so ]; then say "nchan: installed"; return; fi
  ensure_nginx
  apt_install libnginx-mod-nchan
  if command -v service >/dev/null; then service nginx stop >/dev/null 2>&1 || true; fi
  say "nchan: installed"
}

for service in "${wanted[@]}"; do
  "ensure_$service"
done
