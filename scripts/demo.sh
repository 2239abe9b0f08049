#!/bin/sh
# The demo: a fresh data dir, one sync of the bundled example company
# (examples/demo, the files connector), then the same questions answered as
# two people with different permissions.
set -e
bin=$(realpath "${1:-build/release/ctxgate}")
cd "$(dirname "$0")/.."
cfg=examples/ctxgate.json
rm -rf build/demo-data

echo "== sync examples/demo (Northwind Robotics: hr, finance, engineering, all-hands)"
"$bin" --config "$cfg" sync
echo
"$bin" --config "$cfg" status
for q in "vacation policy" "2027 budget" "salary bands" "incident postmortem"; do
    for u in alice@northwind.test bob@northwind.test; do
        echo
        echo "== \"$q\" asked as $u"
        "$bin" --config "$cfg" search --as "$u" --k 4 "$q"
    done
done
echo
echo "== \"salary bands\" asked as someone the company does not know"
"$bin" --config "$cfg" search --as mallory@evil.test --k 4 "salary bands"
echo
echo "alice is in hr-leads (inside hr) and managers; bob is in engineering and eng-oncall."
echo "Try: $bin --config $cfg search --as frank@northwind.test --json vacation"
