#!/usr/bin/env bash
# Start a local PostgreSQL for the tests: role/db `fspo` (password `fspo`) on 127.0.0.1:5432.
#
# Idempotent, for a fresh Debian/Ubuntu machine as root: installs the server if missing, creates
# and starts a cluster, creates the role and the database, waits until a TCP login works.
# Used by .ci/run; safe to run again (it only does what is missing).
set -euo pipefail

PGUSER_NAME="${FSPO_PG_USER:-fspo}"
PGPASSWORD_VALUE="${FSPO_PG_PASSWORD:-fspo}"
PGDB_NAME="${FSPO_PG_DB:-fspo}"
PGPORT_NUM="${FSPO_PG_PORT:-5432}"

log() { echo "[start-postgres] $*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
    log "must run as root (it installs packages and starts the cluster)"
    exit 1
fi

if ! command -v pg_lsclusters >/dev/null 2>&1 || [ -z "$(ls /usr/lib/postgresql 2>/dev/null)" ]; then
    log "installing postgresql"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq postgresql >/dev/null
fi

version="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"
cluster="main"

if ! pg_lsclusters --no-header | awk '{print $1" "$2}' | grep -qx "${version} ${cluster}"; then
    log "creating cluster ${version}/${cluster}"
    pg_createcluster --port "${PGPORT_NUM}" "${version}" "${cluster}" >/dev/null
fi

if ! pg_lsclusters --no-header | awk -v v="${version}" -v c="${cluster}" '$1==v && $2==c {print $4}' | grep -q online; then
    log "starting cluster ${version}/${cluster}"
    pg_ctlcluster "${version}" "${cluster}" start
fi

# Wait for the server to accept local connections.
for _ in $(seq 1 60); do
    if su postgres -c "pg_isready -q -p ${PGPORT_NUM}"; then
        break
    fi
    sleep 0.5
done
su postgres -c "pg_isready -p ${PGPORT_NUM}" >/dev/null

psql_admin() { su postgres -c "psql -p ${PGPORT_NUM} -v ON_ERROR_STOP=1 -qtAc \"$1\""; }

if [ "$(psql_admin "SELECT 1 FROM pg_roles WHERE rolname='${PGUSER_NAME}'")" != "1" ]; then
    log "creating role ${PGUSER_NAME}"
    psql_admin "CREATE ROLE ${PGUSER_NAME} LOGIN PASSWORD '${PGPASSWORD_VALUE}'"
else
    psql_admin "ALTER ROLE ${PGUSER_NAME} LOGIN PASSWORD '${PGPASSWORD_VALUE}'"
fi

if [ "$(psql_admin "SELECT 1 FROM pg_database WHERE datname='${PGDB_NAME}'")" != "1" ]; then
    log "creating database ${PGDB_NAME}"
    su postgres -c "createdb -p ${PGPORT_NUM} -O ${PGUSER_NAME} ${PGDB_NAME}"
fi

# Wait until a password login over TCP works (what the tests do).
for _ in $(seq 1 60); do
    if PGPASSWORD="${PGPASSWORD_VALUE}" psql -h 127.0.0.1 -p "${PGPORT_NUM}" -U "${PGUSER_NAME}" \
        -d "${PGDB_NAME}" -qtAc "SELECT 1" >/dev/null 2>&1; then
        log "ready: postgresql://${PGUSER_NAME}:***@127.0.0.1:${PGPORT_NUM}/${PGDB_NAME}"
        exit 0
    fi
    sleep 0.5
done
log "PostgreSQL did not accept a TCP login as ${PGUSER_NAME} on 127.0.0.1:${PGPORT_NUM}"
exit 1
