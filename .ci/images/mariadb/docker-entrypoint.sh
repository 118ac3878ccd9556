#!/usr/bin/env bash
# Entrypoint of the local stand-in for the official mariadb image. It honours the same
# contract: MARIADB_* (or MYSQL_*) ROOT_PASSWORD, ALLOW_EMPTY_ROOT_PASSWORD, ROOT_HOST,
# DATABASE, USER, PASSWORD, their *_FILE variants, and /docker-entrypoint-initdb.d.
# First start initialises the data directory with a networkless temporary server; passwords
# travel to it on stdin, never on a command line. The real server then runs as PID 1.
set -euo pipefail

die() { printf 'mariadb-entrypoint: error: %s\n' "$*" >&2; exit 1; }
note() { printf 'mariadb-entrypoint: %s\n' "$*"; }

DATADIR=/var/lib/mysql
SOCKET=/run/mysqld/mysqld.sock

# file_env NAME [DEFAULT]: MARIADB_NAME, else MYSQL_NAME, each from the environment or from
# the file its *_FILE variant names; the result is exported as MARIADB_NAME.
file_env() {
    local name=$1 def=${2:-} val='' found='' prefix var file_var
    for prefix in MARIADB MYSQL; do
        var="${prefix}_${name}" file_var="${prefix}_${name}_FILE"
        if [ -n "${!var:-}" ] && [ -n "${!file_var:-}" ]; then
            die "both $var and $file_var are set (they are exclusive)"
        fi
        if [ -z "$found" ] && [ -n "${!var:-}" ]; then
            val=${!var} found=1
        elif [ -z "$found" ] && [ -n "${!file_var:-}" ]; then
            [ -r "${!file_var}" ] || die "$file_var: cannot read ${!file_var}"
            val=$(<"${!file_var}") found=1
        fi
        unset "$file_var"
        [ "$prefix" = MARIADB ] || unset "$var"
    done
    export "MARIADB_${name}"="${val:-$def}"
}

is_true() {
    case "${1,,}" in '' | 0 | no | false | off) return 1 ;; *) return 0 ;; esac
}

setup_env() {
    file_env ROOT_PASSWORD
    file_env ALLOW_EMPTY_ROOT_PASSWORD
    file_env ROOT_HOST '%'
    file_env DATABASE
    file_env USER
    file_env PASSWORD
}

if [ "${1:0:1}" = '-' ]; then
    set -- mariadbd "$@"
fi
case "$1" in
    mariadbd | mysqld) ;;
    *) exec "$@" ;;
esac

setup_env

if [ "$(id -u)" = 0 ]; then
    # Secrets were read above as root (so 0600 secret files work); drop to the mysql user.
    mkdir -p "$DATADIR" /run/mysqld
    find "$DATADIR" /run/mysqld \! -user mysql -exec chown mysql:mysql '{}' +
    exec setpriv --reuid=mysql --regid=mysql --init-groups -- "${BASH_SOURCE[0]}" "$@"
fi

# sql_string VALUE: VALUE as the body of a single-quoted SQL string literal.
sql_string() {
    local v=${1//\\/\\\\}
    printf '%s' "${v//\'/\\\'}"
}

# sql_ident VALUE: VALUE as the body of a backquoted SQL identifier.
sql_ident() {
    printf '%s' "${1//\`/\`\`}"
}

client() {
    mariadb --no-defaults --protocol=socket --socket="$SOCKET" --user=root "$@"
}

process_init_file() {
    local f=$1
    case "$f" in
        *.sh)
            # shellcheck disable=SC1090  # the user's init scripts, sourced as upstream does
            if [ -x "$f" ]; then note "running $f"; "$f"; else note "sourcing $f"; . "$f"; fi ;;
        *.sql) note "running $f"; client ${MARIADB_DATABASE:+"--database=$MARIADB_DATABASE"} <"$f" ;;
        *.sql.gz) note "running $f"; gzip -dc "$f" | client ${MARIADB_DATABASE:+"--database=$MARIADB_DATABASE"} ;;
        *) note "ignoring $f" ;;
    esac
}

bootstrap_sql() {
    local root_pw user_pw health_pw=$1
    root_pw=$(sql_string "$MARIADB_ROOT_PASSWORD")
    user_pw=$(sql_string "$MARIADB_PASSWORD")
    cat <<SQL
SET @@SESSION.SQL_LOG_BIN=0;
SET @@SESSION.SQL_MODE=REPLACE(@@SESSION.SQL_MODE, 'NO_BACKSLASH_ESCAPES', '');
DROP USER IF EXISTS root@'127.0.0.1', root@'::1';
EXECUTE IMMEDIATE CONCAT('DROP USER IF EXISTS root@\'', @@hostname, '\'');
SET PASSWORD FOR 'root'@'localhost' = PASSWORD('$root_pw');
SQL
    if [ "$MARIADB_ROOT_HOST" != localhost ]; then
        cat <<SQL
CREATE USER 'root'@'$(sql_string "$MARIADB_ROOT_HOST")' IDENTIFIED BY '$root_pw';
GRANT ALL ON *.* TO 'root'@'$(sql_string "$MARIADB_ROOT_HOST")' WITH GRANT OPTION;
GRANT PROXY ON ''@'%' TO 'root'@'$(sql_string "$MARIADB_ROOT_HOST")' WITH GRANT OPTION;
SQL
    fi
    # healthcheck.sh logs in as this local-only user; its password lives in a 0600 file.
    cat <<SQL
CREATE USER 'healthcheck'@'localhost' IDENTIFIED BY '$health_pw';
CREATE USER 'healthcheck'@'127.0.0.1' IDENTIFIED BY '$health_pw';
CREATE USER 'healthcheck'@'::1' IDENTIFIED BY '$health_pw';
SQL
    if [ -n "$MARIADB_DATABASE" ]; then
        # shellcheck disable=SC2016  # backquotes of an SQL identifier, not a command
        printf 'CREATE DATABASE IF NOT EXISTS `%s`;\n' "$(sql_ident "$MARIADB_DATABASE")"
    fi
    if [ -n "$MARIADB_USER" ]; then
        printf "CREATE USER '%s'@'%%' IDENTIFIED BY '%s';\n" "$(sql_string "$MARIADB_USER")" "$user_pw"
        if [ -n "$MARIADB_DATABASE" ]; then
            printf "GRANT ALL ON \`%s\`.* TO '%s'@'%%';\n" \
                "$(sql_ident "$MARIADB_DATABASE")" "$(sql_string "$MARIADB_USER")"
        fi
    fi
    echo 'FLUSH PRIVILEGES;'
}

init_datadir() {
    if [ -z "$MARIADB_ROOT_PASSWORD" ] && ! is_true "$MARIADB_ALLOW_EMPTY_ROOT_PASSWORD"; then
        die "the database is uninitialised and no root password is set: set MARIADB_ROOT_PASSWORD or MARIADB_ROOT_PASSWORD_FILE (or MARIADB_ALLOW_EMPTY_ROOT_PASSWORD=1)"
    fi
    if [ "$MARIADB_USER" = root ]; then
        die "MARIADB_USER=root is not allowed: root is set up by MARIADB_ROOT_PASSWORD"
    fi
    if [ -n "$MARIADB_USER" ] && [ -z "$MARIADB_PASSWORD" ]; then
        die "MARIADB_USER is set but MARIADB_PASSWORD (or MARIADB_PASSWORD_FILE) is not"
    fi

    note "initialising $DATADIR"
    mariadb-install-db --datadir="$DATADIR" --user=mysql \
        --auth-root-authentication-method=normal --skip-test-db \
        --skip-name-resolve >/dev/null

    note "starting a temporary server (no networking)"
    mariadbd --skip-networking --socket="$SOCKET" --skip-log-bin \
        --loose-innodb-buffer-pool-load-at-startup=0 --loose-innodb-buffer-pool-dump-at-shutdown=0 &
    local pid=$! i
    for i in $(seq 1 120); do
        if mariadb-admin --no-defaults --socket="$SOCKET" --user=root ping >/dev/null 2>&1; then
            break
        fi
        kill -0 "$pid" 2>/dev/null || die "temporary server exited during start"
        [ "$i" -lt 120 ] || die "temporary server did not answer within 60s"
        sleep 0.5
    done

    local health_pw
    health_pw=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
    (umask 077 && printf '[client]\nuser=healthcheck\npassword=%s\nsocket=%s\n' \
        "$health_pw" "$SOCKET" >"$DATADIR/.my-healthcheck.cnf")
    bootstrap_sql "$health_pw" | client

    local f
    export MYSQL_PWD=$MARIADB_ROOT_PASSWORD
    for f in /docker-entrypoint-initdb.d/*; do
        if [ -e "$f" ]; then process_init_file "$f"; fi
    done
    unset MYSQL_PWD

    kill "$pid"
    wait "$pid" || die "temporary server did not stop cleanly"
    note "initialisation complete"
}

if [ ! -d "$DATADIR/mysql" ]; then
    init_datadir
fi

# The server needs none of these; keep them out of its environment.
unset MARIADB_ROOT_PASSWORD MARIADB_PASSWORD
exec "$@"
