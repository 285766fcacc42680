# The one image every Headroom process runs: `headroom nodeagent`, `headroom webhook` and
# `headroom extender` (the manifests name the subcommand). Build it from the repository root:
#
#   docker build -t headroom/headroom:0.1.0 .
#
# The tag is the package version in pyproject.toml, which manifests/ refers to.

# Build stage: install the package (no test extras) into a prefix that the runtime copies whole,
# so neither the sources nor pip's build dependencies end up in the image. The libraries come
# from the runtime lock alone, every file checked against its sha256 (`make lock` writes it at the
# test lock's versions, which CI runs); the package itself then adds nothing unpinned.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY requirements/runtime.lock requirements/
RUN pip install --prefix=/install --require-hashes -r requirements/runtime.lock
COPY pyproject.toml README.md ./
COPY headroom/ headroom/
COPY kubeapi/ kubeapi/
COPY serving/ serving/
COPY webhook/ webhook/
COPY extender/ extender/
COPY nodeagent/ nodeagent/
COPY certs/ certs/
COPY cli/ cli/
RUN pip install --prefix=/install --no-deps .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=build /install /usr/local
# Non-root, by number so that `runAsNonRoot` can verify it without a passwd entry; the same
# UID/GID the manifests' securityContext sets. The root filesystem is mounted read-only there:
# the webhook and the extender write only to /tmp (an emptyDir), the node agent nowhere.
USER 65532:65532
ENTRYPOINT ["headroom"]
CMD ["--help"]
