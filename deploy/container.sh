#!/usr/bin/env bash
# How the server is installed and started, in the container and on a host alike: the
# Dockerfile's RUN and CMD call this script, and CI runs the same commands on the host
# (deploy/smoke.sh), so what CI checks is what the image does.
#
#   deploy/container.sh install        venv at $VENV with the dependencies of pyproject.toml
#   deploy/container.sh collectstatic  static files into server/staticfiles (compressed, hashed)
#   deploy/container.sh start          migrations (one replica at a time), then uvicorn
#   deploy/container.sh check          exit 0 when /readyz answers 200 (the health check)
#
# Environment: VENV (/opt/venv), HOST (0.0.0.0), PORT (8000), WEB_CONCURRENCY (worker
# processes, 2), FORWARDED_ALLOW_IPS (the proxies trusted for X-Forwarded-*: addresses or
# networks, 127.0.0.1; "*" is refused), LIMIT_CONCURRENCY (connections, sockets included, per
# worker before plain HTTP requests get 503; 2000), PROMETHEUS_MULTIPROC_DIR (metrics of all
# workers; a fresh directory is made when unset), plus the server's own settings
# (.env.example). `make serve` starts the server through this script too.
set -euo pipefail

APP_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-/opt/venv}"
PYTHON="$VENV/bin/python"

die() { echo "container.sh: $*" >&2; exit 1; }

install() {
  python3 -m venv "$VENV"
  "$PYTHON" -m pip install --quiet --upgrade pip
  # Only the runtime dependencies, read from pyproject.toml, so that this layer of the image
  # is rebuilt when they change and not when the code does.
  "$PYTHON" - "$APP_DIR/pyproject.toml" > "$VENV/requirements.txt" <<'PY'
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    print("\n".join(tomllib.load(f)["project"]["dependencies"]))
PY
  "$PYTHON" -m pip install --quiet -r "$VENV/requirements.txt"
}

collectstatic() {
  # Settings need a key to load; collecting static files signs nothing with it.
  cd "$APP_DIR/server"
  SECRET_KEY="${SECRET_KEY:-collectstatic-only-not-a-secret}" DEBUG=false DATABASE_URL= REDIS_URL= \
    "$PYTHON" manage.py collectstatic --noinput --verbosity 0
}

migrate() {
  # The database may still be starting (a first `docker compose up`): retry for a minute.
  local tries=30
  until "$PYTHON" manage.py migrate_locked --verbosity 1; do
    tries=$((tries - 1))
    [ "$tries" -gt 0 ] || die "migrations failed; giving up"
    echo "container.sh: database not ready, retrying in 2 s" >&2
    sleep 2
  done
}

trusted_proxies() {
  # uvicorn takes the client's address from X-Forwarded-For: with a list of proxies, the
  # right-most entry not from one of them (the address the proxy itself appended); with "*",
  # the left-most, which the client writes, so any client could pick the address that its
  # sign-in failures are counted against.
  local proxies="${FORWARDED_ALLOW_IPS:-127.0.0.1}"
  case ",${proxies// /}," in
    *,\*,*) die "FORWARDED_ALLOW_IPS=* would take the client's address from the part of \
X-Forwarded-For that the client writes itself. List the proxy's address (or its network, \
such as 172.16.0.0/12 for a proxy reaching a container through Docker's networks) instead." ;;
  esac
  printf '%s' "$proxies"
}

start() {
  local proxies
  proxies="$(trusted_proxies)"
  cd "$APP_DIR/server"
  # prometheus_client's multiprocess mode: each worker writes its values to files here and a
  # scrape adds them up. Values of a previous run must not be added in, so start empty.
  export PROMETHEUS_MULTIPROC_DIR="${PROMETHEUS_MULTIPROC_DIR:-${TMPDIR:-/tmp}/chat-metrics}"
  mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
  find "$PROMETHEUS_MULTIPROC_DIR" -maxdepth 1 -name '*.db' -type f -delete
  "$PYTHON" manage.py check_workers --workers "${WEB_CONCURRENCY:-2}"
  migrate
  # The socket flags of `make run` (see the Makefile for why no permessage-deflate), and the
  # limits uvicorn has for slow or greedy clients. h11 rather than httptools: httptools reads
  # request headers of any size; h11 answers 400 past 16 KiB. A client that sends nothing, or
  # its headers a line at a time, is not timed out by uvicorn at all: the proxy in front must
  # do that (README, "Behind a TLS proxy").
  exec "$VENV/bin/uvicorn" config.asgi:application \
    --host "${HOST:-0.0.0.0}" --port "${PORT:-8000}" \
    --workers "${WEB_CONCURRENCY:-2}" \
    --proxy-headers --forwarded-allow-ips "$proxies" \
    --ws-max-size 65536 --ws-per-message-deflate false \
    --ws-ping-interval 20 --ws-ping-timeout 20 \
    --http h11 --h11-max-incomplete-event-size 16384 \
    --timeout-keep-alive 5 --limit-concurrency "${LIMIT_CONCURRENCY:-2000}" \
    --lifespan on --timeout-graceful-shutdown 20
}

check() {
  "$PYTHON" - "http://127.0.0.1:${PORT:-8000}/readyz" <<'PY'
import sys, urllib.error, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=5) as answer:
        sys.exit(0 if answer.status == 200 else 1)
except urllib.error.HTTPError as error:
    print(error.read().decode(errors="replace"), file=sys.stderr)
except OSError as error:
    print(error, file=sys.stderr)
sys.exit(1)
PY
}

case "${1:-}" in
  install | collectstatic | start | check) "$1" ;;
  *) die "usage: $0 install|collectstatic|start|check" ;;
esac
