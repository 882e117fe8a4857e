# The LiveKit worker (`memory-agent start`), built from uv.lock. The database lives on a volume:
#   docker build -t memory-agent .
#   docker run --env-file .env.local -v memory-agent-data:/data memory-agent
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

USER agent
VOLUME ["/data"]
# LiveKit's health check (the worker's HTTP server).
EXPOSE 8081
CMD ["/app/.venv/bin/memory-agent", "start"]
