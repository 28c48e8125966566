# The vihtr web app on CPU: page + JSON API on port 8000, served by waitress.
#
#   docker build -t vihtr .
#   docker run --rm -p 8000:8000 vihtr
#   docker run --rm -p 8000:8000 -v /path/to/lines:/samples:ro vihtr \
#       python -m vihtr.app --host 0.0.0.0 --samples-dir /samples
#
# Note: not built or run on the development machine (no Docker there, and download.pytorch.org is not
# reachable from it); written against requirements/core.txt.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    NO_ALBUMENTATIONS_UPDATE=1 \
    PYTHONPATH=/app/src

WORKDIR /app

# Dependencies first: this layer is rebuilt only when the requirements change.
# torch/torchvision from the CPU index: on Linux x86_64 the PyPI wheels pull several GB of CUDA libraries.
# core.txt pins the same versions, so the second install keeps these CPU builds.
COPY requirements/core.txt requirements/core.txt
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 torchvision==0.28.0 \
    && pip install -r requirements/core.txt waitress

# The code runs from source (PYTHONPATH), so the shipped models under /app/models and the app's static
# files and samples are found where the package expects them.
COPY src ./src
COPY models ./models

RUN useradd --create-home --uid 10001 vihtr
USER vihtr

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"
CMD ["python", "-m", "vihtr.app", "--host", "0.0.0.0", "--port", "8000"]
