# stove-ctl in a container. With a broker and the simulated kitchen: docker compose up
# (compose.yaml). For a real kitchen, mount your own config at /config/config.yaml.

# Build stage: python-miio needs netifaces, which has no wheel for Python 3.11, so
# pip compiles it here. The runtime image gets the finished venv and no compiler.
FROM python:3.11-slim AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY stove_ctl ./stove_ctl
COPY hardware ./hardware
RUN python -m venv /opt/stove-ctl \
    && /opt/stove-ctl/bin/pip install --no-cache-dir --disable-pip-version-check .

FROM python:3.11-slim
COPY --from=build /opt/stove-ctl /opt/stove-ctl
ENV PATH=/opt/stove-ctl/bin:$PATH \
    PYTHONUNBUFFERED=1
# The same layout as the systemd unit: state in /var/lib/stove-ctl, the control
# socket in /run/stove-ctl. Both belong to the unprivileged user it runs as.
RUN useradd --system --user-group --no-create-home --shell /usr/sbin/nologin stove-ctl \
    && install -d -m 0700 -o stove-ctl -g stove-ctl /var/lib/stove-ctl /run/stove-ctl
USER stove-ctl
VOLUME ["/var/lib/stove-ctl"]
CMD ["stove-ctl", "run", "-c", "/config/config.yaml"]
