#!/bin/bash
# Health checks for the MariaDB stand-in, run in argument order like the official image's:
#   --su-mysql | --su=USER   re-run the remaining checks as that account
#   --connect                the server accepts connections (socket, else TCP)
#   --innodb_initialized     InnoDB finished its start-up and crash recovery
#   --innodb_buffer_pool_loaded   the buffer pool dump was loaded
#   --datadir=DIR, --defaults-file=F, --defaults-extra-file=F, --no-defaults
set -eo pipefail

datadir=/var/lib/mysql
declare -a defaults=()
connected=

switch_user() {
    local account=$1
    shift
    if [[ $(id -un) == "$account" ]]; then
        exec "$0" "$@"
    fi
    exec setpriv --reuid="$account" --regid="$account" --init-groups "$0" "$@"
}

query() {
    mariadb "${defaults[@]}" --protocol=socket --batch --skip-column-names "$@"
}

connect() {
    local answer
    if answer=$(query -e 'SELECT @@skip_networking' 2>/dev/null); then
        connected=1
        [[ $answer == 0 ]]
        return
    fi
    answer=$(mariadb "${defaults[@]}" -h localhost --protocol=tcp --batch --skip-column-names \
        -e 'SELECT @@skip_networking' 2>&1) || true
    case $answer in
        0 | "ERROR 1045 (28000)"* | "ERROR 3159"* | "ERROR 1"???" (28000)"*) connected=1 ;;
        *) return 1 ;;
    esac
}

innodb_initialized() {
    [[ $(query -e "SELECT 1 FROM information_schema.ENGINES WHERE engine='InnoDB'
        AND support IN ('YES', 'DEFAULT', 'ENABLED')") == 1 ]]
}

innodb_buffer_pool_loaded() {
    [[ $(query -e "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS
        WHERE VARIABLE_NAME='Innodb_buffer_pool_load_status'") == *"load completed"* ]]
}

[[ $# -gt 0 ]] || { echo "healthcheck.sh: at least one check is required" >&2; exit 1; }

for argument in "$@"; do
    case $argument in
        --datadir=*) datadir=${argument#*=} ;;
    esac
done
[[ -r $datadir/.my-healthcheck.cnf ]] && defaults=(--defaults-extra-file="$datadir/.my-healthcheck.cnf")

while [[ $# -gt 0 ]]; do
    argument=$1
    shift
    case $argument in
        --su-mysql) switch_user mysql "$@" ;;
        --su=*) switch_user "${argument#*=}" "$@" ;;
        --datadir=*) ;;
        --no-defaults) defaults=(--no-defaults) ;;
        --defaults-file=* | --defaults-extra-file=*) defaults=("$argument") ;;
        --connect | --innodb_initialized | --innodb_buffer_pool_loaded)
            check=${argument#--}
            if ! "$check"; then
                echo "healthcheck $check failed" >&2
                exit 1
            fi
            ;;
        *) echo "healthcheck.sh: unknown option or check '$argument'" >&2; exit 1 ;;
    esac
done
# A check that passed without ever reaching the server proves nothing: connect last.
[[ -n $connected ]] || connect
