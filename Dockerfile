# The awfdrs image: one image for `awfdrs worker` and `awfdrs api` (scale both out) and
# `awfdrs migrate` (one-shot).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY migrations ./migrations
COPY src ./src
# Editable, so the migrations stay next to the package where `awfdrs migrate` looks for them.
RUN pip install -e . && useradd --system --uid 10001 awfdrs
USER awfdrs

# Prometheus metrics when AWFDRS_METRICS_PORT is set (the compose file sets 9464); the API on 8000.
EXPOSE 9464 8000
ENTRYPOINT ["awfdrs"]
CMD ["worker"]
