# The LiveKit worker (`memory-agent start`), built from uv.lock. The database lives on a volume:
#   docker build -t memory-agent .
#   docker run --env-file .env.local -v memory-agent-data:/data --stop-timeout 30 memory-agent
# A named volume, a bind mount or a Kubernetes volume all work: the entrypoint gives /data to the
# agent's uid (10001) and drops to it, or says in one line why it cannot write there.
# Without the volume, every caller is forgotten at the next deploy. With PostgreSQL
# (MEMORY_AGENT_DB=postgresql://...), the volume still keeps this host's spool: calls the server
# refused, written at the next start.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    MEMORY_AGENT_DB=/data/memory.db \
    MEMORY_AGENT_SPOOL_DIR=/data

RUN pip install --no-cache-dir "uv==0.13.9" \
    && useradd --create-home --uid 10001 agent \
    && mkdir /data && chown agent /data

WORKDIR /app

# Dependencies first, in their own layer: code changes do not reinstall them.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --locked --no-install-project --no-cache

COPY memory_agent ./memory_agent
COPY db ./db
RUN uv sync --locked --no-editable --no-cache \
    && .venv/bin/memory-agent download-files

COPY docker-entrypoint.sh /usr/local/bin/
VOLUME ["/data"]
# LiveKit's health check (the worker's HTTP server): GET / answers 200 "OK".
EXPOSE 8081
# Starts as root only to fix the ownership of /data, then runs the command as uid 10001.
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
# SIGTERM drains for MEMORY_AGENT_DRAIN_TIMEOUT_S (15 s), then ends running calls (each is written):
# give the container 30 s to stop (docker --stop-timeout 30; Kubernetes' default grace period).
CMD ["/app/.venv/bin/memory-agent", "start"]
