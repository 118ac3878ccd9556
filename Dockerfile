# The example service's image: dbtasks, the service package and its Alembic migrations, run
# as an unprivileged user. Built by docker-compose.yml (service `app`).
#
# Build args:
#   PYTHON_IMAGE  base image (default python:3.12-slim)
#   EXTRAS        dbtasks extras to install (drivers for both servers, and backup codecs)
# Builders that cannot reach PyPI put wheels for every dependency, built for the base image's
# Python, in ./wheels first (`pip wheel '.[postgresql,mysql,backup]' hatchling -w wheels`, as
# .ci/compose-up does); pip then installs from that folder alone.
ARG PYTHON_IMAGE=python:3.12-slim
FROM ${PYTHON_IMAGE}

ARG EXTRAS=postgresql,mysql,backup
# .ci/compose-up removes the images a rebuild leaves dangling by this label.
LABEL dbtasks.image=example-app
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY src/ src/
# `wheel[s]` is a pattern, so this COPY also works when the folder does not exist;
# pyproject.toml only keeps the source list from being empty then.
COPY pyproject.toml wheel[s] /tmp/wheels/
RUN if ls /tmp/wheels/*.whl >/dev/null 2>&1; then \
        pip install --no-index --find-links=/tmp/wheels ".[${EXTRAS}]"; \
    else \
        pip install ".[${EXTRAS}]"; \
    fi \
    && rm -rf /tmp/wheels \
    && useradd --system --create-home --home-dir /home/app --shell /usr/sbin/nologin app \
    && mkdir -p var backups \
    && chown app:app var backups

COPY alembic.ini tasks.py ./
# Owned by the app user: `dbtasks create-migration --runner compose` writes the new revision
# here, then copies it out to the host's alembic/versions/.
COPY --chown=app:app alembic/ alembic/
USER app
CMD ["dbtasks", "--list"]
