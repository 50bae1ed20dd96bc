# One image for both roles: the web process (default) and a worker:
#   docker run IMAGE                        -> python -m server
#   docker run IMAGE python -m workers      -> one arq worker (metrics on :9101)
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The pinned dependencies first, in a layer of their own: a code change reuses it.
COPY requirements.txt ./
RUN pip install --no-deps -r requirements.txt

# Then Chorus itself (its dependencies are already there).
COPY pyproject.toml README.md ./
COPY chorus ./chorus
COPY server ./server
COPY workers ./workers
COPY static ./static
RUN pip install --no-deps --no-build-isolation . \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin chorus \
    && mkdir -p /app/data \
    && chown chorus /app/data

USER chorus

ENV HOST=0.0.0.0 \
    PORT=8080 \
    WORKER_METRICS_PORT=9101 \
    DATA_DIR=/app/data

EXPOSE 8080 9101

# /healthz of whichever role this container runs (web on PORT, worker on WORKER_METRICS_PORT).
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-m", "server.healthcheck"]

CMD ["python", "-m", "server"]
