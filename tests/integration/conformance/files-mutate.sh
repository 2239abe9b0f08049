#!/bin/sh
# files-mutate.sh ROOT VERB STREAM ID [PRINCIPAL] - the conformance suite's
# --mutate hook for the files connector: changes the document ID (a path
# relative to ROOT, whose front matter holds "allow: [...]").
set -eu
root=$1 verb=$2 stream=$3 id=$4
[ "$stream" = files ] || { echo "files-mutate: no stream $stream" >&2; exit 2; }
f="$root/$id"
case $verb in
touch)  echo "changed by the conformance suite" >>"$f" ;;
delete) rm "$f" ;;
revoke)
    p=$(printf '%s' "$5" | sed 's/[.[\*^$/]/\\&/g')
    sed -i -e "/^allow:/ s/$p, //" -e "/^allow:/ s/, $p\]/]/" -e "/^allow:/ s/\[$p\]/[]/" "$f"
    if grep -q "^allow:.*$p" "$f"; then echo "files-mutate: $5 still in $f" >&2; exit 1; fi
    ;;
*) echo "files-mutate: unknown verb $verb" >&2; exit 2 ;;
esac
