#!/usr/bin/env bash
# Start a PostgreSQL server on loopback for the tests that run against the PostgreSQL store, and
# print the URL they take (PARLEY_TEST_POSTGRES_URL). Installs Debian's postgresql when missing;
# safe to run again. The role is a superuser because each test creates and drops its own database;
# it is a test server on 127.0.0.1 only, never one holding real data.
#
#   export PARLEY_TEST_POSTGRES_URL="$(bash scripts/postgres-test-setup.sh)"
set -euo pipefail

ROLE=parley_test
PASSWORD=parley_test
PORT="${PARLEY_TEST_POSTGRES_PORT:-5432}"

if ! command -v pg_lsclusters >/dev/null || [ -z "$(ls /usr/lib/postgresql 2>/dev/null)" ]; then
    echo "installing postgresql" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
fi

version="$(ls /usr/lib/postgresql | sort -n | tail -1)"
if ! pg_lsclusters --no-header | grep -q "^$version main"; then
    pg_createcluster "$version" main --port "$PORT" >&2
fi
if ! pg_lsclusters --no-header | grep "^$version main" | grep -q online; then
    pg_ctlcluster "$version" main start >&2
fi
port="$(pg_lsclusters --no-header | awk -v v="$version" '$1 == v && $2 == "main" { print $3 }')"

# Bounded wait for the server to accept connections.
for _ in $(seq 1 50); do
    if su postgres -c "psql -p $port -Atqc 'SELECT 1'" >/dev/null 2>&1; then
        break
    fi
    sleep 0.2
done

su postgres -c "psql -p $port -v ON_ERROR_STOP=1 -Atq" >&2 <<SQL
DO \$\$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$ROLE') THEN
        CREATE ROLE $ROLE LOGIN SUPERUSER PASSWORD '$PASSWORD';
    END IF;
END
\$\$;
SQL

# Each test makes its own database (parley_t_<hash>, tests/common/postgres.rs) and leaves it for
# a look afterwards; the ones from earlier runs go now, so they do not pile up run after run.
su postgres -c "psql -p $port -Atq -c \"SELECT datname FROM pg_database WHERE datname LIKE 'parley\\_t\\_%'\"" |
    while read -r db; do
        su postgres -c "dropdb -p $port --if-exists --force '$db'" >&2 || true
    done

echo "postgres://$ROLE:$PASSWORD@127.0.0.1:$port/postgres"
