#!/bin/sh
# Runs once, when the PostgreSQL volume is initialised (docker-entrypoint-initdb.d):
# creates one database per QuNimbus node, owned by POSTGRES_USER.
# Each node keeps its own ledger (hash chain, Merkle tree, checkpoints signed
# with its own key), so two nodes must never share one database.
set -eu
for db in ${QUNIMBUS_NODE_DATABASES:?list the node databases, space-separated}; do
  echo "init-databases: creating database $db"
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -c "CREATE DATABASE \"$db\" OWNER \"$POSTGRES_USER\""
done
