#!/usr/bin/env bash
# CPU time of a 5-minute run paced at 4 requests/s (1,200 certificates against
# `cfrevoke sandbox` with Cloudflare's quota): what cfrevoke costs while it waits.
set -euo pipefail
. "$(dirname "$0")/sandbox.sh"
bin=${BIN:-target/release/cfrevoke}
work=$(mktemp -d)
trap 'kill "${sandbox:-}" 2>/dev/null; rm -rf "$work"' EXIT
start_sandbox --generate 1200 --zones 3 --write-csv "$work/certs.csv"
CLOUDFLARE_API_TOKEN=$token /usr/bin/time -v "$bin" revoke "$work/certs.csv" --base-url "$url" \
  --rate 4/s --yes -q -o "$work/out.csv" 2>&1 >/dev/null | grep -E "Elapsed|User time|System time|Maximum resident|Voluntary"
curl -s "${url%/client/v4}/__sandbox/stats" | python3 -c 'import json,sys; j=json.load(sys.stdin); print("429s:", j["rate_limited"], "max in window:", j["max_in_window"])'
