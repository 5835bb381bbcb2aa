# syntax=docker/dockerfile:1
# Mifumo: one image for every service (web, workers, beat, migrate, smpp); the command picks
# which (docker/entrypoint.sh).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- builder: wheels for every dependency, installed into a virtualenv ---------------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /build
# Only the dependency list first, so that a code change does not rebuild the wheels.
COPY pyproject.toml README.md ./
RUN python -m pip wheel --wheel-dir /wheels . \
    && python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-index --find-links /wheels /wheels/*.whl \
    && /opt/venv/bin/pip uninstall --yes pip

# --- runtime ---------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DEBUG=false \
    PORT=8001 \
    MIFUMO_VAR_DIR=/app/var \
    STATIC_ROOT=/app/static \
    PROMETHEUS_MULTIPROC_DIR=/tmp/mifumo-metrics
RUN groupadd --system --gid 10001 mifumo \
    && useradd --system --uid 10001 --gid mifumo --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin mifumo
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
# .dockerignore lets in only what runs: manage.py, the apps, templates and docker/.
COPY . .
# Static files live outside the var volume so that a new image always brings its own; the
# key only lets the settings load (DEBUG off demands one) and is not kept anywhere.
RUN SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput \
    && rm -rf /app/var \
    && install -d -o mifumo -g mifumo -m 0750 /app/var \
    && chmod 0755 docker/entrypoint.sh
USER mifumo
EXPOSE 8001
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "docker/healthcheck.py"]
ENTRYPOINT ["/app/docker/entrypoint.sh"]
CMD ["web"]
