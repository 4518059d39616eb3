#!/usr/bin/env bash
# The image's install and start, run on the host (no Docker engine in CI): deploy/container.sh
# installs into a throwaway venv, collects static files and starts the server with two workers
# against the local PostgreSQL and Redis, as docker-compose.yml would; then /readyz must answer
# 200 (its details only with the token), /healthz and a hashed static file must be served, /metrics must refuse without the token
# and add up both workers with it. The server is stopped and its database dropped at the end.
#
#   deploy/smoke.sh        (needs PostgreSQL on 127.0.0.1:5432 as postgres, Redis on 6379)
set -euo pipefail
cd "$(dirname "$0")/.."

PG_URL="${SMOKE_PG_URL:-postgres://postgres@127.0.0.1:5432}"
# A database (dropped and created again), Redis database and key prefix of its own.
DB_NAME="${SMOKE_DB_NAME:-chat_smoke}"
SMOKE_REDIS_URL="${SMOKE_REDIS_URL:-redis://127.0.0.1:6379/5}"
SMOKE_PREFIX="${SMOKE_PREFIX:-smoke}"
WORK="$(mktemp -d)"
SERVER_PID=""
export PGOPTIONS="--client-min-messages=warning"

cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID"
    for _ in $(seq 30); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 1; done
  fi
  psql "$PG_URL/postgres" -q -c "DROP DATABASE IF EXISTS $DB_NAME" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

step() { printf -- '-- %s\n' "$*"; }
fail() { echo "smoke: FAILED: $*" >&2; [ -f "$WORK/server.log" ] && tail -n 40 "$WORK/server.log" >&2; exit 1; }

if command -v docker-compose >/dev/null; then
  step "docker-compose.yml is valid (docker-compose config, with .env.example as .env)"
  mkdir "$WORK/compose"
  cp docker-compose.yml "$WORK/compose/"
  sed 's/^POSTGRES_PASSWORD=.*/POSTGRES_PASSWORD=smoke-only/' .env.example > "$WORK/compose/.env"
  (cd "$WORK/compose" && docker-compose config --quiet) || fail "docker-compose config"
fi

export VENV="$WORK/venv"
step "install (deploy/container.sh install into $VENV)"
deploy/container.sh install

step "collectstatic"
deploy/container.sh collectstatic

psql "$PG_URL/postgres" -q -c "DROP DATABASE IF EXISTS $DB_NAME" >/dev/null
psql "$PG_URL/postgres" -q -c "CREATE DATABASE $DB_NAME" >/dev/null

PORT="$("$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
TOKEN="$("$VENV/bin/python" -c 'import secrets; print(secrets.token_urlsafe(32))')"
export PORT HOST=127.0.0.1 WEB_CONCURRENCY=2 \
  DEBUG=false SECRET_KEY="$("$VENV/bin/python" -c 'import secrets; print(secrets.token_urlsafe(50))')" \
  ALLOWED_HOSTS=127.0.0.1 SECURE_SSL_REDIRECT=false \
  DATABASE_URL="$PG_URL/$DB_NAME" REDIS_URL="$SMOKE_REDIS_URL" CHANNEL_PREFIX="$SMOKE_PREFIX" \
  LLM_PROVIDER=echo METRICS_TOKEN="$TOKEN" LOG_FORMAT=json \
  PROMETHEUS_MULTIPROC_DIR="$WORK/metrics"

step "start (deploy/container.sh start on port $PORT)"
deploy/container.sh start > "$WORK/server.log" 2>&1 &
SERVER_PID=$!

ready=""
for _ in $(seq 90); do
  kill -0 "$SERVER_PID" 2>/dev/null || fail "the server exited"
  if deploy/container.sh check 2>/dev/null; then ready=1; break; fi
  sleep 1
done
[ -n "$ready" ] || fail "/readyz did not answer 200 within 90 s"
step "/readyz answers 200"

"$VENV/bin/python" - "http://127.0.0.1:$PORT" "$TOKEN" <<'PY' || fail "HTTP checks"
import json, re, sys, urllib.error, urllib.request

base, token = sys.argv[1], sys.argv[2]


def get(path, **headers):
    request = urllib.request.Request(base + path, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, {k.lower(): v for k, v in answer.headers.items()}, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


# Anyone gets the status alone; the parts' details need the token (or a staff session).
status, _, body = get("/readyz")
assert status == 200 and json.loads(body) == {"result": "success", "status": "ready"}, body
status, _, body = get("/readyz", Authorization=f"Bearer {token}")
checks = json.loads(body)["checks"]
assert status == 200 and all(c["ok"] for c in checks.values()), checks
assert checks["database"]["detail"] == "postgresql", checks
assert checks["channel_layer"]["detail"].startswith("Redis"), checks
assert checks["cache"]["detail"] == "RedisCache", checks

status, _, body = get("/healthz")
assert status == 200 and json.loads(body)["status"] == "ok", body

# Several scrapes: each worker that answers must report the same totals (multiprocess mode).
assert get("/metrics")[0] == 401
assert get("/metrics", Authorization="Bearer wrong")[0] == 403
for _ in range(3):
    get("/api/no-such-endpoint/")
totals = set()
for _ in range(4):
    status, _, body = get("/metrics", Authorization=f"Bearer {token}")
    assert status == 200, status
    match = re.search(rb'chat_http_errors_total\{code="not_found",status="404"\} (\S+)', body)
    assert match, body[:2000]
    totals.add(float(match.group(1)))
assert totals == {3.0}, totals

# The admin's stylesheet, by its hashed name, compressed and cached for a year.
status, _, page = get("/admin/login/")
assert status == 200, status
css = re.search(r'href="(/static/admin/css/base\.[0-9a-f]{12}\.css)"', page.decode())
assert css, "no hashed stylesheet link on /admin/login/"
status, headers, _ = get(css.group(1), **{"Accept-Encoding": "gzip"})
assert status == 200, status
assert headers.get("content-encoding") == "gzip", headers
assert "immutable" in headers.get("cache-control", ""), headers
print("-- /healthz, /metrics (token, 2 workers added up), static files: ok")
PY

step "demo data, then a room-chat socket seen in the metrics"
DEMO_PASSWORD="$("$VENV/bin/python" -c 'import secrets; print(secrets.token_urlsafe(16))')"
(cd server && "$VENV/bin/python" manage.py demo_data --password "$DEMO_PASSWORD" >/dev/null)
(cd server && "$VENV/bin/python" manage.py demo_data --password "$DEMO_PASSWORD" >/dev/null)
"$VENV/bin/python" - "$PORT" "$TOKEN" "$DEMO_PASSWORD" <<'PY' || fail "socket metrics"
import json, re, sys, time, urllib.request
from websockets.sync.client import connect

port, token, password = sys.argv[1:]
base = f"http://127.0.0.1:{port}"


def call(path, body=None, **headers):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, headers=headers)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as answer:
        return answer, json.loads(answer.read()) if path.startswith("/api/") else None


def metric(name, labels):
    request = urllib.request.Request(base + "/metrics", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        text = answer.read().decode()
    match = re.search(re.escape(f"{name}{{{labels}}}") + r" (\S+)", text)
    return float(match.group(1)) if match else 0.0


answer, _ = call("/api/auth/login/", {"username": "demo_bob", "password": password})
cookies = " ".join(answer.headers.get_all("Set-Cookie") or [])
cookie = re.search(r"sessionid=([^;]+)", cookies).group(1)
_, rooms = call("/api/chat/my-rooms/", Cookie=f"sessionid={cookie}")
room = next(r for r in rooms["rooms"] if r["name"] == "Demo room")
_, history = call(f"/api/chat/rooms/{room['id']}/messages/", Cookie=f"sessionid={cookie}")
assert len(history["messages"]) == 4, history  # twice demo_data, once the messages

messages_before = metric("chat_messages_total", 'kind="room"')
with connect(f"ws://127.0.0.1:{port}/ws/chat/{room['id']}/",
             additional_headers={"Cookie": f"sessionid={cookie}"}) as ws:
    assert metric("chat_open_sockets", 'route="chat"') == 1.0
    ws.send(json.dumps({"type": "chat_message", "message": "hello from the smoke test"}))
    frame = json.loads(ws.recv(timeout=10))
    assert frame["type"] == "chat_message" and frame["is_self"], frame
    ws.send("not json")
    assert json.loads(ws.recv(timeout=10))["code"] == "invalid_json"
for _ in range(50):
    if metric("chat_open_sockets", 'route="chat"') == 0.0:
        break
    time.sleep(0.1)
assert metric("chat_open_sockets", 'route="chat"') == 0.0
assert metric("chat_messages_total", 'kind="room"') == messages_before + 1
assert metric("chat_socket_errors_total", 'code="invalid_json"') == 1.0
print("-- demo_data is idempotent; open sockets, messages and socket errors counted")
PY

step "logs are JSON lines on stdout"
"$VENV/bin/python" - "$WORK/server.log" <<'PY' || fail "log format"
import json, sys

lines = [l for l in open(sys.argv[1], encoding="utf-8") if l.startswith("{")]
records = [json.loads(l) for l in lines]
assert any(r["logger"] == "uvicorn.access" for r in records), "no access lines"
assert not any("/readyz" in r["message"] for r in records if r["logger"] == "uvicorn.access")
assert any(r.get("request_id") for r in records if r["logger"] == "django.request"), records[-5:]
PY

step "stop"
kill -TERM "$SERVER_PID"
for _ in $(seq 30); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 1; done
kill -0 "$SERVER_PID" 2>/dev/null && fail "the server did not stop within 30 s"
SERVER_PID=""
echo "smoke: ok"
