#!/bin/bash
# Entry point honouring the official mariadb image's contract on Debian's MariaDB: on the first
# start only, initialise /var/lib/mysql, set the root password, create MARIADB_DATABASE and
# MARIADB_USER, run /docker-entrypoint-initdb.d; then run the server as the mysql account.
set -eo pipefail

DATADIR=/var/lib/mysql
SOCKET=/run/mysqld/mysqld.sock

log() { echo "$(date -u +%FT%TZ) [entrypoint] $*" >&2; }
fail() { log "ERROR: $*"; exit 1; }

# file_env NAME: NAME may come from NAME, MYSQL_NAME's alias, or NAME_FILE (never both).
file_env() {
    local name=$1 alias="MYSQL_${1#MARIADB_}" value=
    local file_name="${name}_FILE" alias_file="${alias}_FILE"
    if [[ -n ${!name:-} && -n ${!file_name:-} ]]; then
        fail "both $name and $file_name are set; use one"
    fi
    if [[ -n ${!name:-} ]]; then
        value=${!name}
    elif [[ -n ${!file_name:-} ]]; then
        [[ -r ${!file_name} ]] || fail "$file_name points to an unreadable file"
        value=$(< "${!file_name}")
    elif [[ -n ${!alias:-} ]]; then
        value=${!alias}
    elif [[ -n ${!alias_file:-} ]]; then
        [[ -r ${!alias_file} ]] || fail "$alias_file points to an unreadable file"
        value=$(< "${!alias_file}")
    fi
    export "$name"="$value"
    unset "$file_name" "$alias" "$alias_file"
}

sql_string() { local s=${1//\\/\\\\}; s=${s//\'/\\\'}; printf "'%s'" "$s"; }
sql_name() { local s=${1//\`/\`\`}; printf '`%s`' "$s"; }

client() { mariadb --protocol=socket --socket="$SOCKET" -uroot "$@"; }

start_temporary_server() {
    "$@" --skip-networking --socket="$SOCKET" --skip-log-bin --wsrep-on=OFF \
        --loose-innodb-buffer-pool-load-at-startup=0 &
    TEMPORARY_PID=$!
    for _ in $(seq 300); do
        if mariadb-admin --socket="$SOCKET" -uroot ping >/dev/null 2>&1; then return 0; fi
        kill -0 "$TEMPORARY_PID" 2>/dev/null || fail "temporary server exited during start"
        sleep 0.1
    done
    fail "temporary server did not answer within 30 s"
}

# Read every setting (files included) while still root, as the official image does: secret
# files may be readable by root only.
read_settings() {
    local name
    for name in ROOT_PASSWORD ROOT_PASSWORD_HASH DATABASE USER PASSWORD PASSWORD_HASH \
        ALLOW_EMPTY_ROOT_PASSWORD RANDOM_ROOT_PASSWORD ROOT_HOST; do
        file_env "MARIADB_$name"
    done
}

initialise() {
    local root_host=${MARIADB_ROOT_HOST:-%}

    if [[ -z $MARIADB_ROOT_PASSWORD && -z $MARIADB_ROOT_PASSWORD_HASH
          && -z $MARIADB_ALLOW_EMPTY_ROOT_PASSWORD && -z $MARIADB_RANDOM_ROOT_PASSWORD ]]; then
        fail "database is uninitialised and none of MARIADB_ROOT_PASSWORD[_HASH],"\
" MARIADB_ALLOW_EMPTY_ROOT_PASSWORD, MARIADB_RANDOM_ROOT_PASSWORD is set"
    fi
    if [[ -n $MARIADB_RANDOM_ROOT_PASSWORD ]]; then
        MARIADB_ROOT_PASSWORD=$(pwgen --numerals --capitalize --symbols --remove-chars="'\\" -1 32)
        log "generated a random root password (printed once below)"
        echo "GENERATED ROOT PASSWORD: $MARIADB_ROOT_PASSWORD" >&2
    fi

    log "initialising $DATADIR"
    mariadb-install-db --datadir="$DATADIR" --rpm --skip-test-db --skip-log-bin \
        --auth-root-authentication-method=normal --cross-bootstrap --default-time-zone=SYSTEM \
        >/dev/null
    start_temporary_server "$@"

    local root_auth
    if [[ -n $MARIADB_ROOT_PASSWORD_HASH ]]; then
        root_auth="IDENTIFIED BY PASSWORD $(sql_string "$MARIADB_ROOT_PASSWORD_HASH")"
    else
        root_auth="IDENTIFIED BY $(sql_string "$MARIADB_ROOT_PASSWORD")"
    fi
    local healthcheck_password
    healthcheck_password=$(pwgen --numerals --capitalize --remove-chars="'\\" -1 32)
    {
        echo "SET @@SESSION.SQL_LOG_BIN=0;"
        # Drop only what mariadb-install-db adds beyond root@localhost, as the official image
        # does: accounts an init_file from /etc/mysql/conf.d created on this temporary server
        # stay whole (deleting rows from mysql.global_priv would orphan their grants, and a
        # later CREATE USER IF NOT EXISTS for them then silently does nothing).
        echo "DROP USER IF EXISTS root@'127.0.0.1', root@'::1';"
        echo "EXECUTE IMMEDIATE CONCAT('DROP USER IF EXISTS root@\\'', @@hostname, '\\'');"
        echo "ALTER USER root@localhost $root_auth;"
        if [[ $root_host != localhost ]]; then
            echo "CREATE USER root@$(sql_string "$root_host") $root_auth;"
            echo "GRANT ALL ON *.* TO root@$(sql_string "$root_host") WITH GRANT OPTION;"
            echo "GRANT PROXY ON ''@'%' TO root@$(sql_string "$root_host") WITH GRANT OPTION;"
        fi
        for host in 127.0.0.1 ::1 localhost; do
            echo "CREATE USER healthcheck@'$host' IDENTIFIED BY $(sql_string "$healthcheck_password");"
            echo "GRANT USAGE ON *.* TO healthcheck@'$host';"
        done
        if [[ -n $MARIADB_DATABASE ]]; then
            echo "CREATE DATABASE IF NOT EXISTS $(sql_name "$MARIADB_DATABASE");"
        fi
        if [[ -n $MARIADB_USER ]]; then
            if [[ -n $MARIADB_PASSWORD_HASH ]]; then
                echo "CREATE USER $(sql_string "$MARIADB_USER")@'%' IDENTIFIED BY PASSWORD $(sql_string "$MARIADB_PASSWORD_HASH");"
            else
                echo "CREATE USER $(sql_string "$MARIADB_USER")@'%' IDENTIFIED BY $(sql_string "$MARIADB_PASSWORD");"
            fi
            if [[ -n $MARIADB_DATABASE ]]; then
                echo "GRANT ALL ON $(sql_name "$MARIADB_DATABASE").* TO $(sql_string "$MARIADB_USER")@'%';"
            fi
        fi
        echo "FLUSH PRIVILEGES;"
    } | client
    (
        umask 077
        printf '[mariadb-client]\nport=3306\nsocket=%s\nuser=healthcheck\npassword=%s\n' \
            "$SOCKET" "$healthcheck_password" > "$DATADIR/.my-healthcheck.cnf"
    )

    if [[ -n $MARIADB_ROOT_PASSWORD ]]; then
        export MYSQL_PWD=$MARIADB_ROOT_PASSWORD
    fi
    for script in /docker-entrypoint-initdb.d/*; do
        case $script in
            *.sh) log "running $script"; . "$script" ;;
            *.sql) log "running $script"; client ${MARIADB_DATABASE:+"$MARIADB_DATABASE"} < "$script" ;;
            *.sql.gz) log "running $script"; gzip -dc "$script" | client ${MARIADB_DATABASE:+"$MARIADB_DATABASE"} ;;
            *.sql.xz) log "running $script"; xz -dc "$script" | client ${MARIADB_DATABASE:+"$MARIADB_DATABASE"} ;;
            *.sql.zst) log "running $script"; zstd -dc "$script" | client ${MARIADB_DATABASE:+"$MARIADB_DATABASE"} ;;
            */\*) ;;
            *) log "ignoring $script" ;;
        esac
    done

    mariadb-admin --socket="$SOCKET" -uroot shutdown
    wait "$TEMPORARY_PID"
    unset MYSQL_PWD
    log "initialisation done"
}

if [[ ${1:0:1} == - ]]; then
    set -- mariadbd "$@"
fi

if [[ $1 == mariadbd || $1 == mysqld ]]; then
    read_settings
    if [[ $(id -u) == 0 ]]; then
        mkdir -p /run/mysqld
        chown mysql:mysql /run/mysqld
        find "$DATADIR" \! -user mysql -exec chown mysql:mysql '{}' +
        # Re-run as the mysql account, like the official image does with gosu.
        exec setpriv --reuid=mysql --regid=mysql --init-groups "$0" "$@"
    fi
    if [[ ! -d $DATADIR/mysql ]]; then
        initialise "$@"
    fi
    # Secrets read for the first start must not stay in the server's environment.
    unset MARIADB_ROOT_PASSWORD MARIADB_PASSWORD MYSQL_ROOT_PASSWORD MYSQL_PASSWORD
    log "starting $*"
fi
exec "$@"
