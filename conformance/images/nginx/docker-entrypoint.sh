#!/bin/sh
# Run the executable /docker-entrypoint.d/*.sh hooks (as the official image does), then nginx.
set -e
if [ "$1" = nginx ]; then
    for hook in /docker-entrypoint.d/*.sh; do
        if [ -x "$hook" ]; then
            "$hook"
        fi
    done
fi
exec "$@"
