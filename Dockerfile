# syntax=docker/dockerfile:1
# policyengine: the admission webhook (and the rest of the CLI) in a small non-root image.
#   docker build -t policyengine .
#   docker run --rm -p 8443:8443 -v "$PWD/tls:/tls:ro" policyengine --tls-cert /tls/tls.crt --tls-key /tls/tls.key

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/policyengine
COPY pyproject.toml README.md ./
COPY policyengine/ policyengine/
COPY policies/ policies/
COPY webhook/ webhook/
COPY audit/ audit/
RUN /opt/policyengine/bin/pip install --no-cache-dir /src

FROM python:3.11-slim
LABEL org.opencontainers.image.title="policyengine" \
      org.opencontainers.image.description="Policy-as-code admission webhook, CI gate and audit trail for AI workloads on Kubernetes" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/policyengine/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN groupadd --system --gid 10001 policyengine \
 && useradd --system --uid 10001 --gid policyengine --no-create-home --shell /usr/sbin/nologin policyengine
COPY --from=build /opt/policyengine /opt/policyengine
USER 10001:10001
EXPOSE 8443
ENTRYPOINT ["policyengine", "serve"]
CMD ["--tls-cert", "/etc/policyengine/tls/tls.crt", "--tls-key", "/etc/policyengine/tls/tls.key"]
