#!/usr/bin/env bash
# Entrypoint of the local stand-in for the official postgres image. It honours the same
# contract: POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB (and their *_FILE variants),
# POSTGRES_INITDB_ARGS, POSTGRES_HOST_AUTH_METHOD, PGDATA and /docker-entrypoint-initdb.d.
# First start initialises the cluster behind a private unix socket, so nothing (not even a
# socket client in the container) sees a half-initialised server; the real server then runs
# in the foreground as PID 1.
set -euo pipefail

die() { printf 'postgres-entrypoint: error: %s\n' "$*" >&2; exit 1; }
note() { printf 'postgres-entrypoint: %s\n' "$*"; }

# file_env VAR [DEFAULT]: VAR from the environment, or from the file named by VAR_FILE.
file_env() {
    local var=$1 file_var="${1}_FILE" def=${2:-}
    if [ -n "${!var:-}" ] && [ -n "${!file_var:-}" ]; then
        die "both $var and $file_var are set (they are exclusive)"
    fi
    local val=$def
    if [ -n "${!var:-}" ]; then
        val=${!var}
    elif [ -n "${!file_var:-}" ]; then
        [ -r "${!file_var}" ] || die "$file_var: cannot read ${!file_var}"
        val=$(<"${!file_var}")
    fi
    export "$var"="$val"
    unset "$file_var"
}

setup_env() {
    file_env POSTGRES_PASSWORD
    file_env POSTGRES_USER postgres
    file_env POSTGRES_DB "$POSTGRES_USER"
    file_env POSTGRES_INITDB_ARGS
    export PGDATA=${PGDATA:-/var/lib/postgresql/data}
    : "${POSTGRES_HOST_AUTH_METHOD:=scram-sha-256}"
    export POSTGRES_HOST_AUTH_METHOD
}

if [ "${1:0:1}" = '-' ]; then
    set -- postgres "$@"
fi

if [ "$1" != postgres ]; then
    exec "$@"
fi

setup_env

if [ "$(id -u)" = 0 ]; then
    # Secrets were read above as root (so 0600 secret files work); drop to the postgres user.
    mkdir -p "$PGDATA" /var/run/postgresql
    chmod 700 "$PGDATA" 2>/dev/null || :
    find "$PGDATA" \! -user postgres -exec chown postgres:postgres '{}' +
    chown postgres:postgres /var/run/postgresql
    chmod 2775 /var/run/postgresql
    exec setpriv --reuid=postgres --regid=postgres --init-groups -- "${BASH_SOURCE[0]}" "$@"
fi

process_init_file() {
    local f=$1
    case "$f" in
        *.sh)
            # shellcheck disable=SC1090  # the user's init scripts, sourced as upstream does
            if [ -x "$f" ]; then note "running $f"; "$f"; else note "sourcing $f"; . "$f"; fi ;;
        *.sql) note "running $f"; psql_init -f "$f" ;;
        *.sql.gz) note "running $f"; gzip -dc "$f" | psql_init ;;
        *) note "ignoring $f" ;;
    esac
}

psql_init() {
    psql -v ON_ERROR_STOP=1 --no-password --no-psqlrc --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" "$@"
}

init_cluster() {
    if [ -z "$POSTGRES_PASSWORD" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != trust ]; then
        die "the database is uninitialised and no superuser password is set: set POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE (or POSTGRES_HOST_AUTH_METHOD=trust)"
    fi
    note "initialising $PGDATA for user $POSTGRES_USER"
    # shellcheck disable=SC2086  # POSTGRES_INITDB_ARGS is a list of words, as upstream.
    if [ -n "$POSTGRES_PASSWORD" ]; then
        # The password reaches initdb through a pipe: only a /dev/fd path is on its argv.
        initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
            -D "$PGDATA" $POSTGRES_INITDB_ARGS >/dev/null
    else
        initdb --username="$POSTGRES_USER" -D "$PGDATA" $POSTGRES_INITDB_ARGS >/dev/null
    fi

    printf "\nlisten_addresses = '*'\n" >>"$PGDATA/postgresql.conf"
    printf '\nhost all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD" >>"$PGDATA/pg_hba.conf"

    # Temporary server: no TCP, and its socket in a private directory.
    local sockdir
    sockdir=$(mktemp -d /tmp/pg-init.XXXXXX)
    pg_ctl -D "$PGDATA" -w -t 60 -l "$sockdir/init.log" \
        -o "-c listen_addresses='' -c unix_socket_directories=$sockdir" start >/dev/null \
        || { cat "$sockdir/init.log" >&2; die "temporary server did not start"; }
    export PGHOST=$sockdir PGPORT=5432

    if [ "$POSTGRES_DB" != postgres ]; then
        printf 'CREATE DATABASE :"db";\n' \
            | psql -v ON_ERROR_STOP=1 --no-password --no-psqlrc --username "$POSTGRES_USER" \
                --dbname postgres --set db="$POSTGRES_DB" >/dev/null
    fi
    local f
    for f in /docker-entrypoint-initdb.d/*; do
        if [ -e "$f" ]; then process_init_file "$f"; fi
    done

    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
    unset PGHOST PGPORT
    rm -rf "$sockdir"
    note "initialisation complete"
}

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    init_cluster
fi

# The server needs none of these; keep them out of its environment.
unset POSTGRES_PASSWORD
exec "$@"
