# syntax=docker/dockerfile:1
# The operator image: `redis-audiences run`, installed from the project's wheel.
# Build with `make image`; the chart's image.repository and image.tag point here.

FROM python:3.11-slim-bookworm AS build
WORKDIR /src
RUN pip install --no-cache-dir build==1.6.1
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN python -m build --wheel --outdir /dist

FROM python:3.11-slim-bookworm
LABEL org.opencontainers.image.title="redis-audiences" \
      org.opencontainers.image.description="Audience membership in Redis Sets, as Kubernetes custom resources" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=build /dist/*.whl /tmp/
RUN pip install --no-cache-dir /tmp/*.whl && rm /tmp/*.whl \
    && useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin audiences
USER 10001:10001
EXPOSE 8080 9090
ENTRYPOINT ["redis-audiences", "run"]
CMD ["--all-namespaces", "--liveness", "http://0.0.0.0:8080/healthz", "--metrics-port", "9090"]
