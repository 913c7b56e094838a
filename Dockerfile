# tradeloop's services (worker, trainer, inference, simulator, health) share this image; the
# compose file picks the command. CPU-only torch keeps the image a fraction of the CUDA build's size.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The heavy, rarely changing layer first: torch from the PyTorch CPU index, pinned as pyproject.toml pins it.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu

# Then the project. Editable, so streams/ finds the Avro contracts in /app/schemas beside it.
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY streams ./streams
COPY agents ./agents
COPY trainers ./trainers
COPY tradeloop ./tradeloop
RUN pip install -e ".[rocksdb]"

RUN useradd --create-home --uid 10001 tradeloop \
    && mkdir -p /data \
    && chown tradeloop /data
USER tradeloop

ENV TRADELOOP_DATA_DIR=/data
VOLUME ["/data"]
ENTRYPOINT ["tradeloop"]
CMD ["--help"]
