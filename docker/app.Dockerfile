# The CreatorPulse command line (`creatorpulse ...`) in a container, without Java: the `init`
# service of docker-compose.yml runs `creatorpulse stack up --only postgres kafka` with it against
# the compose services, which applies the database migrations and creates the Kafka topics.
# Build from the repository root:
#   docker build -f docker/app.Dockerfile .

# --- the virtualenv, built where a compiler is at hand ------------------------------------------
FROM python:3.11-slim-bookworm AS build
ARG DEBIAN_FRONTEND=noninteractive
# A C compiler for the dependencies published only as source (crcmod; apache-flink on arm64).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# PyFlink first, in its own layer: it is by far the largest dependency and changes least.
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install apache-flink==2.2.1
COPY . /src
RUN /opt/venv/bin/pip install /src

# --- the image ----------------------------------------------------------------------------------
FROM python:3.11-slim-bookworm
COPY --from=build /opt/venv /opt/venv
RUN useradd --system --uid 10001 --home-dir /app --no-create-home creatorpulse
WORKDIR /app
# `stack up` ends by printing the status of every part, Flink's too, whose address it reads from
# flink-conf/config.yaml (CREATORPULSE_FLINK_CONF_DIR, "flink-conf" under the working folder).
COPY flink-conf/config.yaml flink-conf/config.yaml
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1
USER 10001
CMD ["creatorpulse", "--help"]
