# syntax=docker/dockerfile:1
# The dsm image: one binary, every role (`dsm serve coordinator|learner|worker|
# verifier|meta-verifier`, comma-separated roles share one process).
#
#   docker build -t dsm .                          # CPU (Debian's LibTorch)
#   docker build -t dsm:cuda --build-arg TORCH=cuda .   # CUDA LibTorch (see below)
#
# Stages: build-base (Debian bookworm + the build packages of
# scripts/setup.sh, read from that file so the two never drift) -> torch-cpu or
# torch-cuda (where LibTorch comes from) -> build-source (cmake + ninja, the
# `dsm` target only) -> runtime (bookworm-slim + exactly the Debian packages the
# binary links against, found with ldd/dpkg by deploy/runtime-libs.sh).
#
# A binary already built on a Debian 12 machine (scripts/setup.sh) skips the
# compile: DSM_BUILD=prebuilt takes the build context's prebuilt/ folder, as
# `deploy/runtime-libs.sh build/dsm CONTEXT/prebuilt` writes it, instead of
# build-source (deploy/compose-e2e.sh builds its image so). Only the stages
# the image needs are built (BuildKit; podman/buildah when the ARGs are given
# with --build-arg).
#
# CUDA variant (TORCH=cuda): LibTorch comes from PyTorch's CUDA wheel
# (TORCH_CUDA_INDEX, default CUDA 12.6, which runs on a T4's sm_75) installed
# into a virtualenv in the builder; cmake finds it through
# torch.utils.cmake_prefix_path, as README's "Building by hand" says. The wheel
# bundles the CUDA runtime libraries (nvidia-* packages), so the runtime stage
# copies LibTorch's and those libraries into /opt/dsm/lib and stays a plain
# Debian image; the host needs only the NVIDIA driver and the NVIDIA Container
# Toolkit (`deploy.resources.reservations.devices` in docker-compose.yml).
# Use torch >= 2.7: older wheels are built with the pre-C++11 string ABI and
# cannot link with Debian's gRPC and Abseil. The image is about 5 GB.

ARG DEBIAN_IMAGE=debian:bookworm
ARG DEBIAN_SLIM_IMAGE=debian:bookworm-slim
# cpu | cuda
ARG TORCH=cpu
# source | prebuilt
ARG DSM_BUILD=source

# --------------------------------------------------------------------------
FROM ${DEBIAN_IMAGE} AS build-base
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV DEBIAN_FRONTEND=noninteractive
COPY scripts/setup.sh /tmp/setup.sh
# setup.sh's PACKAGES, less what only the tests and benchmarks use.
RUN eval "$(sed -n '/^PACKAGES=(/,/^)/p' /tmp/setup.sh)" \
 && build=() \
 && for p in "${PACKAGES[@]}"; do \
      case "$p" in prometheus|python3*|nodejs|npm|libgtest-dev|libgmock-dev|docker-compose|chromium) ;; *) build+=("$p") ;; esac; \
    done \
 && apt-get update \
 && apt-get install -y --no-install-recommends "${build[@]}" \
 && rm -rf /var/lib/apt/lists/*

# --------------------------------------------------------------------------
FROM build-base AS torch-cpu
ENV TORCH_PREFIX=""

FROM build-base AS torch-cuda
ARG TORCH_SPEC="torch>=2.7"
ARG TORCH_CUDA_INDEX=https://download.pytorch.org/whl/cu126
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3-venv python3-pip \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /opt/torch \
 && /opt/torch/bin/pip install --no-cache-dir "${TORCH_SPEC}" --index-url "${TORCH_CUDA_INDEX}"
ENV TORCH_PREFIX=/opt/torch

# --------------------------------------------------------------------------
FROM torch-${TORCH} AS build-source
WORKDIR /src
COPY . .
RUN prefix="" \
 && if [[ -n "${TORCH_PREFIX}" ]]; then \
      prefix="$("${TORCH_PREFIX}/bin/python3" -c 'import torch; print(torch.utils.cmake_prefix_path)')"; \
    fi \
 && cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release -DDSM_BUILD_TESTS=OFF \
      ${prefix:+-DCMAKE_PREFIX_PATH="$prefix"} \
 && cmake --build /build --target dsm
# Runtime needs: every shared library the binary loads. Those from Debian
# packages become a package list for the runtime stage; the rest (the CUDA
# wheel's LibTorch and CUDA libraries) are copied as files.
RUN if [[ -n "${TORCH_PREFIX}" ]]; then \
      site="$("${TORCH_PREFIX}/bin/python3" -c 'import torch, os; print(os.path.dirname(os.path.dirname(torch.__file__)))')"; \
      export LD_LIBRARY_PATH="$site/torch/lib:$(ls -d "$site"/nvidia/*/lib | paste -sd:)"; \
    fi \
 && deploy/runtime-libs.sh /build/dsm /out

# A binary built elsewhere on Debian 12, with what runtime-libs.sh found for it.
FROM ${DEBIAN_IMAGE} AS build-prebuilt
COPY prebuilt/ /out/

FROM build-${DSM_BUILD} AS builder

# --------------------------------------------------------------------------
FROM ${DEBIAN_SLIM_IMAGE} AS runtime
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV DEBIAN_FRONTEND=noninteractive
COPY --from=builder /out/runtime-packages.txt /tmp/runtime-packages.txt
RUN apt-get update \
 && xargs -a /tmp/runtime-packages.txt apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages.txt
COPY --from=builder /out/lib/ /opt/dsm/lib/
COPY --from=builder /out/dsm /usr/local/bin/dsm
# Prompt templates and example configs: `dsm serve` reads configs/prompts
# relative to the working directory by default.
COPY configs /opt/dsm/configs
ENV LD_LIBRARY_PATH=/opt/dsm/lib
# /models and /data belong to dsm: a new named volume mounted there (the CPU
# variant's dsm-models, dsm-data) takes that owner, so `dsm prepare` can write
# the built-in model and data into it.
RUN useradd --system --uid 10001 --home-dir /var/lib/dsm --shell /usr/sbin/nologin dsm \
 && mkdir -p /var/lib/dsm/runs /var/lib/dsm/checkpoints /models /data \
 && chown -R dsm:dsm /var/lib/dsm /models /data \
 && dsm --help > /dev/null
WORKDIR /opt/dsm
USER dsm
# gRPC 50051-50055 (coordinator, learner, worker, verifier, meta-verifier),
# /metrics 9101-9105, as in configs/*.yaml.
EXPOSE 50051-50055 9101-9105
# The gRPC port this container's health check asks (`dsm health` exits 0 only
# when the server reports SERVING); compose and Kubernetes set it per role.
ENV DSM_HEALTH_PORT=50051
HEALTHCHECK --interval=15s --timeout=6s --start-period=120s --retries=3 \
  CMD dsm health "127.0.0.1:${DSM_HEALTH_PORT}" --timeout 5
ENTRYPOINT ["dsm"]
CMD ["--help"]
