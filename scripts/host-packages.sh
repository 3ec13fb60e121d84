#!/bin/sh
# The Debian packages `make test` runs for real (MariaDB for the rendered server config and the
# backup round trips, nginx for `nginx -t`, age and zstd for the archives, shellcheck for the
# job's scripts): install the missing ones as root on Debian, or name them and fail.
# Extra package names given as arguments are checked and installed the same way.
# Safe to run repeatedly; it does nothing when everything is present.
set -eu

packages="mariadb-server mariadb-client zstd age nginx-light openssl shellcheck $*"

missing=""
for package in $packages; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' \
        || missing="$missing $package"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "host packages missing:$missing" >&2
    echo "install them (Debian: sudo apt-get install --no-install-recommends$missing)" \
        "and run the command again" >&2
    exit 1
fi

echo "host packages: installing$missing from Debian"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086 # one word per package
apt-get install -y -qq --no-install-recommends $missing >/dev/null

# Package scripts may start the daemons; the tests start their own on private ports and sockets.
service mariadb stop >/dev/null 2>&1 || true
service nginx stop >/dev/null 2>&1 || true
