# The Flink image of docker-compose.yml (flink-jobmanager and flink-taskmanager): the official
# Flink 2.2.1 image plus
#   - the connector jars of creatorpulse/stack/maven/flink-connectors/pom.xml in /opt/flink/lib,
#     the same jars `creatorpulse stack install` puts into PyFlink's lib/ for the local stack;
#   - a Python 3.11 venv (/opt/venv) with PyFlink and this project: Python jobs and their UDF
#     workers run with it (python.executable), and jobs import creatorpulse from it;
#   - the repository in /opt/creatorpulse (jobs/ for `flink run -py`), and flink-conf/config.yaml
#     as /opt/flink/conf/config.yaml (docker-compose.yml mounts the live flink-conf/ over
#     /opt/creatorpulse/flink-conf and copies it there at every start).
# The Flink image is Ubuntu 24.04, whose own Python is 3.12; the project is developed and tested
# on 3.11, so uv installs a standalone CPython 3.11 instead. Build from the repository root:
#   docker build -f docker/flink.Dockerfile .

# --- the connector jars -------------------------------------------------------------------------
FROM maven:3.9.9-eclipse-temurin-17 AS jars
WORKDIR /build
COPY creatorpulse/stack/maven/flink-connectors/pom.xml pom.xml
RUN mvn -B -q -f pom.xml dependency:copy-dependencies -DoutputDirectory=/jars

# --- uv, only to install a standalone CPython ---------------------------------------------------
FROM ghcr.io/astral-sh/uv:0.13.8 AS uv

# --- Python, PyFlink and the project, built where a compiler is at hand -------------------------
FROM flink:2.2.1-scala_2.12-java17 AS python
ARG PYTHON_VERSION=3.11.18
ARG DEBIAN_FRONTEND=noninteractive
# A build stage: root throughout, nothing of it runs.
# hadolint ignore=DL3002
USER root
# A C compiler for the dependencies published only as source (crcmod; apache-flink on arm64).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_PYTHON_INSTALL_DIR=/opt/python \
    UV_PYTHON_PREFERENCE=only-managed \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN uv python install "${PYTHON_VERSION}" \
    && uv venv --seed --python "${PYTHON_VERSION}" /opt/venv
# PyFlink first, in its own layer: it is by far the largest dependency and changes least.
RUN /opt/venv/bin/pip install apache-flink==2.2.1
COPY . /opt/creatorpulse
RUN /opt/venv/bin/pip install /opt/creatorpulse

# --- the image ----------------------------------------------------------------------------------
FROM flink:2.2.1-scala_2.12-java17
USER root
COPY --from=python /opt/python /opt/python
COPY --from=python /opt/venv /opt/venv
COPY . /opt/creatorpulse
COPY --from=jars --chown=flink:flink /jars/ /opt/flink/lib/
# The entrypoint of the Flink image edits conf/config.yaml (FLINK_PROPERTIES), so it stays
# writable by the flink user.
COPY --chown=flink:flink flink-conf/config.yaml /opt/flink/conf/config.yaml
# Checkpoints and savepoints: docker-compose.yml mounts a named volume here, which takes this
# folder's owner the first time.
RUN mkdir -p /flink-state/checkpoints /flink-state/savepoints \
    && chown -R flink:flink /flink-state \
    && ln -s /opt/venv/bin/python /usr/local/bin/python
# Flink's own bin/ first: the venv also has a `flink` script, PyFlink's bundled one.
ENV PATH=/opt/flink/bin:/opt/venv/bin:$PATH
USER flink
