#!/bin/sh
# call_api.sh ITEM: POST one item to the API and print its answer. A 429 or 503 becomes exit 75,
# pararun's "throttled", with the Retry-After header's seconds as {"retry_after": N}, so pararun
# pauses every start for that long and runs the item again without using up a retry:
#   pararun -j 16 -i items.jsonl --cache out.jsonl -- sh examples/call_api.sh '<>'
dir=$(mktemp -d) && trap 'rm -rf "$dir"' EXIT
code=$(curl -sS -o "$dir/body" -D "$dir/headers" -w '%{http_code}' -H 'Content-Type: application/json' \
    -d "$1" "${API_URL:-https://api.example.com/v1/answer}") || exit 1
case $code in
429 | 503)
    after=$(tr -d '\r' <"$dir/headers" | sed -n 's/^[Rr]etry-[Aa]fter: *\([0-9.]*\)$/\1/p')
    echo "{\"retry_after\": ${after:-null}}" # none, or a date: pararun backs off on its own
    exit 75 ;;
2??) cat "$dir/body" ;;
*) echo "HTTP $code: $(head -c 300 "$dir/body")" >&2 && exit 1 ;;
esac
