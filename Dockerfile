# syntax=docker/dockerfile:1
# reskernel's image: the API (`reskernel serve`, the default command), the Dask scheduler and the Dask workers
# all run from it (docker-compose.yml). CPU JAX by default; `--build-arg EXTRAS=cuda` adds jax's CUDA 12 plugin
# (pyproject's `cuda` extra) for GPU workers. Nothing but the built wheel and its dependencies is installed.
ARG PYTHON_VERSION=3.12

FROM python:${PYTHON_VERSION}-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY engine engine
COPY service service
COPY report report
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:${PYTHON_VERSION}-slim AS runtime
# empty: CPU JAX (the default dependency); "cuda": the CUDA 12 plugin as well
ARG EXTRAS=""
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    RESKERNEL_DATA_DIR=/data
RUN groupadd --system --gid 10001 reskernel \
    && useradd --system --uid 10001 --gid reskernel --create-home --home-dir /home/reskernel reskernel \
    && mkdir /data \
    && chown reskernel:reskernel /data
# the wheel is mounted from the build stage for this step only, so no layer keeps a copy of it
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    set -- /wheels/reskernel-*.whl \
    && pip install "$1${EXTRAS:+[$EXTRAS]}"
USER 10001:10001
WORKDIR /home/reskernel
# the job store (SQLite or nothing, with RESKERNEL_STORE_URL=redis://...), results and the JAX compilation cache;
# a named volume mounted here starts owned by the reskernel user
VOLUME ["/data"]
EXPOSE 8000
# liveness of the API; the scheduler and workers' services in docker-compose.yml replace it with their own
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
CMD ["reskernel", "serve", "--host", "0.0.0.0", "--port", "8000"]
