# First version: the engine and CLI in one image. The dashboard, queue and Postgres wiring follow.
# torch from PyPI is a CUDA build: the same image runs workers on GPU hosts and on the CPU.
FROM python:3.11-slim
WORKDIR /app
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
ENV TRANSFERLAB_VAR=/data
VOLUME /data
EXPOSE 8501
CMD ["python", "-m", "backend", "train", "--data", "digits"]
