#!/bin/sh
# Run every benchmark in bench/ and print their markdown tables. Results are
# copied into docs/benchmarks.md by hand, with the date and the load.
set -eu
cd "$(dirname "$0")/.."
echo "## bench/sync_pg.sh"
sh bench/sync_pg.sh
echo
echo "## bench/sync_odbc.sh"
sh bench/sync_odbc.sh
echo
echo "## bench/sync_rest.sh"
sh bench/sync_rest.sh
echo
echo "## bench/perm_sync.sh"
sh bench/perm_sync.sh
echo
echo "## bench/search_lexical.sh"
sh bench/search_lexical.sh
echo
echo "## bench/fts5_alone.sh"
sh bench/fts5_alone.sh
echo
echo "## bench/ingest_cost.sh"
sh bench/ingest_cost.sh
echo
echo "## bench/search_cost.sh"
sh bench/search_cost.sh
echo
echo "## bench/vector_search.sh"
sh bench/vector_search.sh
echo
echo "## bench/serve_load.sh (100k chunks)"
DOCS=86000 sh bench/serve_load.sh
echo
echo "## bench/serve_cost.sh"
sh bench/serve_cost.sh
echo
echo "## bench/relevance.sh"
sh bench/relevance.sh
