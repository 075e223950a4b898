# speedrun on an NVIDIA GPU machine: CUDA 13 devel image (Triton and inductor compile kernels at run time, so
# the compiler toolchain stays), PyTorch 2.11 for CUDA 13.0, our package, `speedrun` as the entry point.
#   docker build -t speedrun .
#   docker run --gpus all --ipc=host -v "$PWD/data:/speedrun/data" -v "$PWD/logs:/speedrun/logs" speedrun \
#       train --recipe record21 --nproc 8
FROM nvidia/cuda:13.0.1-cudnn-devel-ubuntu24.04

ENV DEBIAN_FRONTEND=noninteractive PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH \
    NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
# (NVLink multicast off: the lent machines this project measures on require it; remove on your own cluster.)

# The image's own python3 is what we want; pinning Ubuntu package versions would break on its point releases.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv python3-dev git \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/venv

RUN pip install torch==2.11.0 --index-url https://download.pytorch.org/whl/cu130

WORKDIR /speedrun
COPY pyproject.toml README.md ./
COPY speedrun ./speedrun
RUN pip install -e .
COPY benchmarks ./benchmarks
COPY run.sh ./

ENTRYPOINT ["speedrun"]
CMD ["train", "--recipe", "record21"]
