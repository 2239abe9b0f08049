#!/bin/sh
# Install the Debian packages ctxgate needs to build, test and demo, when
# missing. Uses sudo when not root. Safe to run again: installs nothing twice.
set -e
PKGS="build-essential pkg-config libjansson-dev libsqlite3-dev sqlite3 libpq-dev
libssl-dev libcriterion-dev postgresql postgresql-contrib clang python3-jsonschema
unixodbc-dev unixodbc odbcinst libsqliteodbc odbc-postgresql libcurl4-openssl-dev
libfaiss-dev g++ libjwt-dev libmicrohttpd-dev wrk valgrind git-doc time curl chromium"
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

# The tests drive ctxgate with real clients and servers from the npm registry,
# pinned by tests/package-lock.json: the official MCP TypeScript SDKs (v1 and
# v2), oidc-provider (a certified OpenID provider) and playwright-core, which
# drives Debian's chromium (installed above; no browser is downloaded).
if [ ! -d tests/node_modules/playwright-core ] || [ ! -d tests/node_modules/oidc-provider ] ||
   [ ! -d tests/node_modules/@modelcontextprotocol/client ]; then
    echo "deps: npm ci in tests"
    (cd tests && npm ci --no-audit --no-fund --loglevel=error)
fi
