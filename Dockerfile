# One image for all six Omni services; the command picks the service:
#   docker run IMAGE python -m services.<name>
# (docker-compose.yml and deploy/k8s/ set it per service.)
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv

RUN pip install --no-cache-dir uv==0.13.9

WORKDIR /app

# Dependencies first, so code changes do not invalidate this layer.
COPY pyproject.toml uv.lock ./
RUN uv sync --locked --no-dev --no-install-project --no-cache

ENV PATH=/app/.venv/bin:$PATH

# Generated code (no mypy stubs in the image).
COPY protos/ protos/
RUN mkdir -p gen \
 && python -m grpc_tools.protoc -Iprotos --python_out=gen --grpc_python_out=gen \
        $(find protos -name '*.proto')

COPY libs/ libs/
COPY services/ services/
COPY deploy/healthcheck.py deploy/healthcheck.py

RUN groupadd --system --gid 10001 omni \
 && useradd --system --uid 10001 --gid omni --create-home --home-dir /home/omni omni

ENV PYTHONPATH=/app:/app/gen \
    OMNI_GRPC_HOST=0.0.0.0 \
    OMNI_METRICS_HOST=0.0.0.0 \
    OMNI_STATE_DIR=/tmp/omni

USER 10001:10001

CMD ["python", "-c", "raise SystemExit('choose a service: python -m services.<name>')"]
