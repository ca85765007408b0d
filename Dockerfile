# One image for the dashboard and the workers. torch from PyPI is a CUDA build: the same image runs
# workers on GPU hosts and on the CPU. (Not built in this project's CI: no Docker engine there.)
FROM python:3.11-slim
WORKDIR /app
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
ENV TRANSFERLAB_VAR=/data \
    TRANSFERLAB_ARTIFACTS=/data/artifacts
VOLUME /data
EXPOSE 8501
# The dashboard; run workers from the same image with `python -m backend worker --device cuda:0`.
CMD ["streamlit", "run", "app.py", "--server.address=0.0.0.0", "--server.port=8501"]
