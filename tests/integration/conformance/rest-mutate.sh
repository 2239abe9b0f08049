#!/bin/sh
# rest-mutate.sh PORT VERB STREAM ID [PRINCIPAL] - the conformance suite's
# --mutate hook for the rest connector on tests/saas/server.py at
# 127.0.0.1:PORT: stream "tickets" is the tracker's tickets, "pages" the
# wiki's pages. Every change moves the item's updated_at forward: that is
# the connector's cursor.
set -eu
port=$1 verb=$2 stream=$3 id=$4 who=${5:-}
case $stream in
tickets) coll=tracker.tickets ;;
pages)   coll=wiki.pages ;;
*) echo "rest-mutate: unknown stream $stream" >&2; exit 2 ;;
esac
case $verb in
touch)  what=update set='{"description":"changed"}' ;;
delete) what=delete set='{}' ;;
revoke)
    what=update
    case $coll/$who in
    # A ticket's readers are its reporter and its project's groups.
    tracker.*/user:*) set='{"reporter":"nobody"}' ;;
    tracker.*)        set='{"project":"none"}' ;;
    # A page restricted to someone else is closed to its space's groups.
    wiki.*)           set='{"restrictions":{"users":["nobody"],"groups":[]}}' ;;
    esac ;;
*) echo "rest-mutate: unknown verb $verb" >&2; exit 2 ;;
esac
python3 -c 'import sys, urllib.request
urllib.request.urlopen(urllib.request.Request(sys.argv[1], data=sys.argv[2].encode()))' \
    "http://127.0.0.1:$port/_control/$what" \
    "{\"collection\":\"$coll\",\"id\":\"$id\",\"set\":$set}"
