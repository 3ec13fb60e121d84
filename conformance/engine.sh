#!/bin/sh
# Make a local Docker engine available: install Debian's docker.io when dockerd is missing,
# start the daemon detached when it does not answer, and wait for it. Safe to run repeatedly.
set -eu

ENGINE_WAIT_SECONDS="${ENGINE_WAIT_SECONDS:-60}"
# Debian's 20.10 client is the one that speaks BuildKit; prefer it when installed.
DOCKER=docker
[ -x /usr/bin/docker ] && DOCKER=/usr/bin/docker

if ! command -v dockerd >/dev/null 2>&1 || ! command -v debootstrap >/dev/null 2>&1; then
    echo "engine: installing docker.io and debootstrap from Debian"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends docker.io debootstrap >/dev/null
    [ -x /usr/bin/docker ] && DOCKER=/usr/bin/docker
fi

if ! "$DOCKER" info >/dev/null 2>&1; then
    echo "engine: starting dockerd (log: /var/log/dockerd.log)"
    setsid -f dockerd >/var/log/dockerd.log 2>&1
    waited=0
    until "$DOCKER" info >/dev/null 2>&1; do
        if [ "$waited" -ge "$((ENGINE_WAIT_SECONDS * 10))" ]; then
            echo "engine: dockerd did not answer within ${ENGINE_WAIT_SECONDS}s" >&2
            tail -n 20 /var/log/dockerd.log >&2 || true
            exit 1
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
fi

echo "engine: ready ($("$DOCKER" version --format '{{.Server.Version}}'))"
