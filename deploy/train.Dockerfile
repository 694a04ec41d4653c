# syntax=docker/dockerfile:1
#
# Training image (torch, torchvision, timm, onnx export). Build from the repository root:
#
#   docker build -f deploy/train.Dockerfile -t perception-train .
#
# Single GPU / single process:
#   docker run --gpus all --shm-size=8g -v $PWD/data:/data:ro -v $PWD/runs:/runs \
#       -v $PWD/configs:/configs:ro perception-train perception train /configs/<config>.toml --out /runs/<name>
# Several GPUs on one machine:
#   ... perception-train torchrun --nproc_per_node=4 -m perception.cli train /configs/<config>.toml --out /runs/<name>
# Several machines: deploy/k8s/training-job.yaml.
#
# The torch wheels on PyPI carry their own CUDA 13 runtime, cuDNN and NCCL, so the base only needs
# the CUDA "base" flavour (driver hooks for the NVIDIA container runtime); host driver >= 580.

ARG CUDA_BASE_IMAGE=nvidia/cuda:13.0.2-base-ubuntu24.04

FROM ${CUDA_BASE_IMAGE}
ENV DEBIAN_FRONTEND=noninteractive PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 perception \
    && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /home/perception perception \
    && python3 -m venv /opt/venv \
    && mkdir -p /data /runs \
    && chown 10001:10001 /runs
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /app
COPY pyproject.toml README.md ./
COPY perception/ perception/
COPY service/ service/
# torch and torchvision are pinned in pyproject.toml's `train` extra.
# hadolint ignore=DL3013
RUN pip install ".[train]"
ENV PYTHONUNBUFFERED=1 \
    MPLCONFIGDIR=/tmp/matplotlib
USER 10001:10001
VOLUME ["/runs"]
CMD ["perception", "--help"]
