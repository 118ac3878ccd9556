# shellcheck shell=bash
# Shared by compose-up and compose-down (sourced, not run): the project's name and the
# Compose CLI, the same for both so that `down` finds what `up` started.

# Compose's own default, from the folder name; dbtasks' compose runner derives the same.
COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-$(basename "$PWD" | tr '[:upper:]' '[:lower:]' | tr -cd 'a-z0-9_-')}
export COMPOSE_PROJECT_NAME

# The Compose v2 plugin when the docker CLI has it, else the standalone docker-compose.
# shellcheck disable=SC2034  # COMPOSE is used by the scripts that source this file
if docker compose version >/dev/null 2>&1; then
    COMPOSE=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
    COMPOSE=(docker-compose)
else
    printf '%s: error: neither docker compose nor docker-compose is installed\n' "$(basename "$0")" >&2
    exit 1
fi
