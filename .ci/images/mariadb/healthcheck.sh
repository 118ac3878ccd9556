#!/usr/bin/env bash
# Health check of the local stand-in for the official mariadb image, accepting the same flags
# as upstream's healthcheck.sh for the tests it implements:
#   --connect                   the server accepts TCP connections (only true after init)
#   --innodb_initialized        InnoDB is available
#   --innodb_buffer_pool_loaded the buffer pool load at start-up has finished
#   --su-mysql, --su=USER       accepted for compatibility; this script needs no user switch
# Exit 0 when every requested test passes.
set -euo pipefail

CNF=/var/lib/mysql/.my-healthcheck.cnf
PORT=${MARIADB_PORT:-3306}

fail() { printf 'healthcheck: %s\n' "$*" >&2; exit 1; }

query() {
    [ -r "$CNF" ] || fail "cannot read $CNF (not initialised yet?)"
    mariadb --defaults-extra-file="$CNF" --skip-column-names --batch -e "$1"
}

connect() {
    # TCP only, so the networkless temporary server of the first start never counts. The
    # exit status is 0 even on "access denied": the server is up either way.
    local auth=(--no-defaults --user=healthcheck)
    if [ -r "$CNF" ]; then auth=(--defaults-extra-file="$CNF"); fi
    mariadb-admin "${auth[@]}" --protocol=tcp --host=127.0.0.1 --port="$PORT" \
        --connect-timeout=2 ping >/dev/null 2>&1 || fail "no TCP connection on port $PORT"
}

innodb_initialized() {
    local n
    n=$(query "SELECT COUNT(*) FROM information_schema.ENGINES WHERE engine = 'InnoDB' AND support IN ('YES', 'DEFAULT', 'ENABLED')") \
        || fail "cannot query the server"
    [ "$n" = 1 ] || fail "InnoDB is not initialised"
}

innodb_buffer_pool_loaded() {
    local status
    status=$(query "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'INNODB_BUFFER_POOL_LOAD_STATUS'") \
        || fail "cannot query the server"
    case "$status" in
        'Buffer pool(s) load completed'* | '' ) ;;
        *) fail "buffer pool load: $status" ;;
    esac
}

[ "$#" -gt 0 ] || set -- --connect
for arg in "$@"; do
    case "$arg" in
        --connect) connect ;;
        --innodb_initialized) innodb_initialized ;;
        --innodb_buffer_pool_loaded) innodb_buffer_pool_loaded ;;
        --su-mysql | --su=*) ;;
        *) fail "unknown option: $arg" ;;
    esac
done
