# One image for the dashboard and the workers (different commands). torch from PyPI is a CUDA build:
# the same image runs workers on GPU hosts and on the CPU. It installs with the Makefile's own step,
# `make install`, from the same requirement files: one source of truth.
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends make && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 1000 lab && mkdir -p /data && chown lab /data
WORKDIR /app
COPY Makefile requirements.txt requirements-dev.txt ./
RUN make install PYTHON=python3
COPY . .
# Everything the app writes goes under the /data volume; the dashboard listens on every interface of
# the container (the compose file decides what is published).
ENV TRANSFERLAB_VAR=/data \
    TRANSFERLAB_LISTEN_ADDRESS=0.0.0.0 \
    PATH=/app/.venv/bin:$PATH
USER lab
VOLUME /data
EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4).status != 200)"
# The dashboard; a worker is the same image with `python -m backend worker` (see docker-compose.yml).
CMD ["sh", "-c", "exec streamlit run app.py --server.headless true $(python -m backend.settings streamlit-flags)"]
