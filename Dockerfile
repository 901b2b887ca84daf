# The single-user image of a JupyterHub that runs the course (Zero to JupyterHub on
# Kubernetes, or any hub with DockerSpawner/KubeSpawner). It holds the environment only:
# the course's package and the pinned stack from constraints.txt, installed once, outside
# the course folder. Learners get their own copy of the course with an nbgitpuller link
# (docs/setup.md); their progress stays in that copy. Nothing is fetched at run time.
#
#   docker build -t prodready-hub:$(git rev-parse --short HEAD) .
#
# Rebuild (and retag) whenever src/ or constraints.txt change: the package in the image
# must match the notebooks that nbgitpuller hands out. tests/test_reach.py runs this
# install step in a scratch environment on every change (.ci/run).
ARG PYTHON_VERSION=3.12
FROM python:${PYTHON_VERSION}-slim-bookworm

# jupyterhub-singleuser must match the hub's JupyterHub major version: set it to yours.
ARG JUPYTERHUB_VERSION=6.1.1
ARG NBGITPULLER_VERSION=1.3.0
ARG NB_USER=jovyan
ARG NB_UID=1000

# git: nbgitpuller clones and merges the course with it. tini: signals reach the server.
RUN apt-get update \
    && apt-get install --yes --no-install-recommends git tini \
    && rm -rf /var/lib/apt/lists/*

# A virtual environment on everyone's PATH: "system-wide" for learners, and what
# `prodready doctor` expects. Non-editable: the course folder can move, update or vanish.
ENV VIRTUAL_ENV=/opt/prodready
ENV PATH=${VIRTUAL_ENV}/bin:${PATH}
COPY pyproject.toml README.md constraints.txt /tmp/course/
COPY src/ /tmp/course/src/
RUN python -m venv "${VIRTUAL_ENV}" \
    && "${VIRTUAL_ENV}/bin/python" -m pip install --no-cache-dir --disable-pip-version-check \
        "uv==$(sed -n 's/^uv==//p' /tmp/course/constraints.txt)" \
    && "${VIRTUAL_ENV}/bin/uv" pip install --no-cache --compile-bytecode \
        --python "${VIRTUAL_ENV}/bin/python" -c /tmp/course/constraints.txt /tmp/course \
        "jupyterhub==${JUPYTERHUB_VERSION}" "nbgitpuller==${NBGITPULLER_VERSION}" \
    && rm -rf /tmp/course

RUN useradd --create-home --uid "${NB_UID}" --shell /bin/bash "${NB_USER}"
USER ${NB_USER}
ENV HOME=/home/${NB_USER} SHELL=/bin/bash
WORKDIR /home/${NB_USER}
EXPOSE 8888
ENTRYPOINT ["tini", "--"]
CMD ["jupyterhub-singleuser"]
