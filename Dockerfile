# The chat server: uvicorn workers serving HTTP and WebSockets, static files by WhiteNoise.
# Every step is a command of deploy/container.sh, which CI also runs on the host.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PORT=8000

RUN groupadd --system app \
 && useradd --system --gid app --home-dir /app --no-create-home --shell /usr/sbin/nologin app

WORKDIR /app

# PyICU (the usernames' look-alike check) is built against the system's ICU at install.
RUN apt-get update \
 && apt-get install -y --no-install-recommends g++ pkg-config libicu-dev \
 && rm -rf /var/lib/apt/lists/*

# Dependencies first, from pyproject.toml alone: this layer is reused until they change.
COPY pyproject.toml ./
COPY deploy/container.sh deploy/container.sh
RUN deploy/container.sh install

COPY server/ server/
COPY deploy/ deploy/
RUN deploy/container.sh collectstatic

# The code stays root's; the server runs as an ordinary user. `docker compose exec web python
# manage.py ...` runs from the project's directory, as in the seed's instructions.
USER app
WORKDIR /app/server
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=6s --start-period=40s --retries=3 \
    CMD ["/app/deploy/container.sh", "check"]
CMD ["/app/deploy/container.sh", "start"]
