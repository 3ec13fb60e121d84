#!/bin/sh
# Run the executable /docker-entrypoint.d/*.sh hooks (as the official image does), then nginx.
set -e

# Limitation: Debian's nginx is 1.22; the images it stands in for are 1.25+. Two newer spellings
# are translated into a copy of the configuration under /tmp: `http2 on;` becomes the `http2`
# parameter of the server's ssl listeners, and `server ... resolve;` in an upstream loses
# `resolve`, so names resolve once at start (the replay starts upstreams first).
COMPAT_DIR=/tmp/nginx-compat
translate_newer_directives() {
    if ! grep -rqsE '^\s*http2\s+on\s*;|^\s*server\s+[^;#]*\sresolve\s*;' /etc/nginx; then
        return 1
    fi
    rm -rf "$COMPAT_DIR"
    cp -a /etc/nginx "$COMPAT_DIR"
    find "$COMPAT_DIR" -type f -name '*.conf' | while read -r file; do
        sed -i -E \
            -e 's#/etc/nginx/#'"$COMPAT_DIR"'/#g' \
            -e 's/^(\s*server\s+[^;#]*)\s+resolve(\s*;)/\1\2/' \
            "$file"
        if grep -qE '^\s*http2\s+on\s*;' "$file"; then
            sed -i -E \
                -e '/^\s*http2\s+on\s*;/d' \
                -e 's/^(\s*listen\s+[^;#]*\sssl)(\s[^;]*)?;/\1 http2\2;/' \
                "$file"
        fi
    done
    echo "nginx stand-in: 1.25+ directives translated for nginx 1.22 into $COMPAT_DIR" >&2
}

if [ "$1" = nginx ]; then
    for hook in /docker-entrypoint.d/*.sh; do
        if [ -x "$hook" ]; then
            "$hook"
        fi
    done
    if translate_newer_directives; then
        exec "$@" -c "$COMPAT_DIR/nginx.conf"
    fi
fi
exec "$@"
