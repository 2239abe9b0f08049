#!/bin/sh
# pg-mutate.sh TABLE VERB STREAM ID [PRINCIPAL] - the conformance suite's
# --mutate hook for the postgres connector on the test table of
# test_conformance.c (id, body, updated_at, readers text[], gone boolean).
# Every change moves updated_at forward: that is the connector's cursor.
set -eu
table=$1 verb=$2 id=$4
case $verb in
touch)  sql="UPDATE $table SET body = body || ' (changed)', updated_at = now() WHERE id = :'id'" ;;
delete) sql="UPDATE $table SET gone = true, updated_at = now() WHERE id = :'id'" ;;
revoke) sql="UPDATE $table SET readers = array_remove(readers, :'who'), updated_at = now()
             WHERE id = :'id'" ;;
*) echo "pg-mutate: unknown verb $verb" >&2; exit 2 ;;
esac
# psql substitutes :'id' only in what it reads, not in -c: hence the pipe.
echo "$sql" | PGPASSWORD="${CTX_TEST_PGPASSWORD:-}" psql -X -q -v ON_ERROR_STOP=1 \
    -v id="$id" -v who="${5:-}" "$CTX_TEST_PG" >/dev/null
