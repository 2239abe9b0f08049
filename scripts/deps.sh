#!/bin/sh
# Install the Debian packages ctxgate needs to build, test and demo, when
# missing. Uses sudo when not root. Safe to run again: installs nothing twice.
set -e
PKGS="build-essential pkg-config libjansson-dev libsqlite3-dev sqlite3 libpq-dev
libssl-dev libcriterion-dev postgresql postgresql-contrib clang python3-jsonschema
unixodbc-dev unixodbc odbcinst libsqliteodbc odbc-postgresql libcurl4-openssl-dev
libfaiss-dev g++ libjwt-dev libmicrohttpd-dev wrk valgrind git-doc time curl"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $p"
done
command -v npm >/dev/null 2>&1 || missing="$missing nodejs npm"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
if [ -n "$missing" ]; then
    echo "deps: installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends $missing
fi

# The MCP tests drive ctxgate with the official MCP TypeScript SDK client,
# pinned by tests/mcp/package-lock.json, from the npm registry.
if [ ! -d tests/mcp/node_modules/@modelcontextprotocol/sdk ]; then
    echo "deps: npm ci in tests/mcp"
    (cd tests/mcp && npm ci --no-audit --no-fund --loglevel=error)
fi
