# modelarts-exporter container image.
#   docker build -t modelarts-exporter:0.1.0 --build-arg SOURCE_URL=https://... .
#   docker run -p 10072:10072 -v ./config.yaml:/etc/modelarts-exporter/config.yaml:ro \
#     -e HUAWEICLOUD_SDK_AK -e HUAWEICLOUD_SDK_SK modelarts-exporter:0.1.0
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# Build stage: wheel from the source tree, installed into a virtualenv.
FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY exporter ./exporter
COPY scripts/build-venv ./scripts/build-venv
RUN ./scripts/build-venv /opt/modelarts-exporter

# Final stage: the virtualenv only; no compiler, pip cache or sources.
FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
ARG SOURCE_URL=""
LABEL org.opencontainers.image.title="modelarts-exporter" \
      org.opencontainers.image.description="Prometheus exporter for Huawei Cloud ModelArts pool workloads and job resource specs" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /opt/modelarts-exporter /opt/modelarts-exporter
ENV PATH=/opt/modelarts-exporter/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# A fixed, non-root UID/GID (matches the Kubernetes manifests' runAsUser/fsGroup).
USER 10001:10001
EXPOSE 10072
# Mount the configuration here (see config.example.yaml); credentials come from the
# environment (HUAWEICLOUD_SDK_AK/SK) or from files the configuration names.
ENTRYPOINT ["modelarts-exporter"]
CMD ["--config.file=/etc/modelarts-exporter/config.yaml"]
