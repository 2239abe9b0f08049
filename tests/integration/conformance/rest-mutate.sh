#!/bin/sh
# rest-mutate.sh PORT VERB STREAM ID [PRINCIPAL] - the conformance suite's
# --mutate hook for the rest connector reading tickets from the tracker of
# tests/saas/server.py on 127.0.0.1:PORT. Every change moves the ticket's
# updated_at forward: that is the connector's cursor.
set -eu
port=$1 verb=$2 id=$4 who=${5:-}
case $verb in
touch)  what=update body="{\"collection\":\"tracker.tickets\",\"id\":\"$id\",\"set\":{\"description\":\"changed\"}}" ;;
delete) what=delete body="{\"collection\":\"tracker.tickets\",\"id\":\"$id\"}" ;;
revoke)
    # A ticket's readers are its reporter and its project's groups.
    case $who in
    user:*) set='{"reporter":"nobody"}' ;;
    *)      set='{"project":"none"}' ;;
    esac
    what=update body="{\"collection\":\"tracker.tickets\",\"id\":\"$id\",\"set\":$set}" ;;
*) echo "rest-mutate: unknown verb $verb" >&2; exit 2 ;;
esac
python3 -c 'import sys, urllib.request
urllib.request.urlopen(urllib.request.Request(sys.argv[1], data=sys.argv[2].encode()))' \
    "http://127.0.0.1:$port/_control/$what" "$body"
