# One image for the dashboard and the workers (different commands). torch from PyPI is a CUDA build:
# the same image runs workers on GPU hosts and on the CPU. It installs with the Makefile's own step,
# `make install`, from the runtime requirement file: one source of truth (the test tools stay out).
#
# BASE: any Debian-like image with Python 3.11 (venv module included); CI builds on a Debian base made
# by mmdebstrap (.ci/image). One stage, with make installed, used and purged in a single RUN: no layer
# holds make, a pip cache or apt lists, and the 6 GB environment is written once (a second stage that
# copied it would write it twice more, and the builder's disk needs three times the image at its peak).
ARG BASE=python:3.11-slim
FROM ${BASE}
RUN useradd --create-home --uid 1000 lab && mkdir -p /data && chown lab /data
WORKDIR /app
COPY Makefile requirements.txt ./
# Where pip installs from is the builder's business: an optional build secret `pip.conf` (an index with
# credentials, a local mirror) is read during this step only and is in no layer of the image:
#   docker build --secret id=pip.conf,src=$HOME/.config/pip/pip.conf .
RUN --mount=type=secret,id=pip.conf,target=/etc/pip.conf \
    apt-get update && apt-get install -y --no-install-recommends make \
    && PIP_NO_CACHE_DIR=1 make install PYTHON=python3 REQUIREMENTS=requirements.txt \
    && apt-get purge -y --auto-remove make && apt-get clean && rm -rf /var/lib/apt/lists/*
COPY . .
# Everything the app writes goes under the /data volume; the dashboard listens on every interface of
# the container (the compose file decides what is published).
ENV TRANSFERLAB_VAR=/data \
    TRANSFERLAB_LISTEN_ADDRESS=0.0.0.0 \
    PATH=/app/.venv/bin:$PATH
USER lab
VOLUME /data
EXPOSE 8501
# The health check asks the port the dashboard was given (TRANSFERLAB_PORT), not a fixed one.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import sys, urllib.request; from backend.settings import get; url = 'http://127.0.0.1:%d/_stcore/health' % get('port'); sys.exit(urllib.request.urlopen(url, timeout=4).status != 200)"
# The dashboard; a worker is the same image with `python -m backend worker` (see docker-compose.yml).
CMD ["sh", "-c", "exec streamlit run app.py --server.headless true $(python -m backend.settings streamlit-flags)"]
