#!/bin/sh
# Install the Debian packages ctxgate needs to build, test and demo, when
# missing. Uses sudo when not root. Safe to run again: installs nothing twice.
set -e
PKGS="build-essential pkg-config libjansson-dev libsqlite3-dev sqlite3 libpq-dev
libssl-dev libcriterion-dev postgresql postgresql-contrib clang python3-jsonschema
unixodbc-dev unixodbc odbcinst libsqliteodbc odbc-postgresql libcurl4-openssl-dev
libfaiss-dev g++"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing$missing"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends $missing
