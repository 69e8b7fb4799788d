#!/usr/bin/env bash
# Start Debian's PostgreSQL on 127.0.0.1:5432 and create the role and database the inventory contract suite uses
# (CIPHERVISOR_TEST_PG's default: postgres://ciphervisor:ciphervisor@127.0.0.1:5432/ciphervisor_test).
# Run as root on a Debian machine with the `postgresql` package installed. Idempotent: safe to run twice.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "ci-postgres: must run as root (it starts the system PostgreSQL cluster)" >&2
  exit 1
fi

# The newest installed server version, e.g. 15 on Debian 12.
version="${PG_VERSION:-$( (ls /usr/lib/postgresql 2>/dev/null || true) | sort -n | tail -n 1)}"
if [ -z "$version" ] || [ ! -x "/usr/lib/postgresql/$version/bin/postgres" ]; then
  echo "ci-postgres: no PostgreSQL server found under /usr/lib/postgresql (apt-get install postgresql)" >&2
  exit 1
fi
cluster=main
port=5432

# A fresh container may have the package but no cluster (e.g. installed with create_main_cluster = false).
if ! pg_lsclusters --no-header 2>/dev/null | awk '{print $1" "$2}' | grep -qx "$version $cluster"; then
  echo "ci-postgres: creating cluster $version/$cluster"
  pg_createcluster --port "$port" "$version" "$cluster" >/dev/null
fi

status="$(pg_lsclusters --no-header | awk -v v="$version" -v c="$cluster" '$1==v && $2==c {print $4}')"
if [ "$status" != "online" ]; then
  echo "ci-postgres: starting cluster $version/$cluster"
  pg_ctlcluster "$version" "$cluster" start
fi

# Wait until the server accepts TCP connections on loopback (start returns before recovery can finish).
for _ in $(seq 1 60); do
  if pg_isready -q -h 127.0.0.1 -p "$port"; then break; fi
  sleep 0.5
done
if ! pg_isready -q -h 127.0.0.1 -p "$port"; then
  echo "ci-postgres: PostgreSQL did not accept connections on 127.0.0.1:$port within 30 s" >&2
  tail -n 20 "/var/log/postgresql/postgresql-$version-$cluster.log" >&2 || true
  exit 1
fi

psql_admin() { runuser -u postgres -- psql -p "$port" -v ON_ERROR_STOP=1 -qAtX "$@"; }

# Role: password login over 127.0.0.1 (Debian's pg_hba uses scram-sha-256 there). CREATEDB so that test runs may
# create their own databases; the suite itself isolates runs by schema.
psql_admin <<'SQL'
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'ciphervisor') THEN
    CREATE ROLE ciphervisor LOGIN PASSWORD 'ciphervisor' CREATEDB;
  ELSE
    ALTER ROLE ciphervisor LOGIN PASSWORD 'ciphervisor' CREATEDB;
  END IF;
END
$$;
SQL

# CREATE DATABASE cannot run inside a DO block, hence the check from the shell.
if [ "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = 'ciphervisor_test'")" != "1" ]; then
  psql_admin -c "CREATE DATABASE ciphervisor_test OWNER ciphervisor"
fi
# PostgreSQL 15 no longer grants CREATE on schema public to everyone; the owner of the database may create schemas.
psql_admin -d ciphervisor_test -c "ALTER SCHEMA public OWNER TO ciphervisor"

echo "ci-postgres: ready at postgres://ciphervisor:***@127.0.0.1:$port/ciphervisor_test"
