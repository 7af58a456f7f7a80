#!/usr/bin/env bash
# Peak resident memory of cfrevoke revoking 1,000,000 certificates against
# `cfrevoke sandbox` (a separate process, so only cfrevoke's own memory is
# measured). Needs /usr/bin/time (Debian package `time`). Loopback only.
set -euo pipefail
. "$(dirname "$0")/sandbox.sh"
rows=${1:-1000000}
bin=${BIN:-target/release/cfrevoke}
work=$(mktemp -d)
trap 'kill "${sandbox:-}" 2>/dev/null; rm -rf "$work"' EXIT
python3 - "$rows" > "$work/big.csv" <<'PY'
import sys
print("zone_id,certificate_id")
for i in range(int(sys.argv[1])):
    print(f"{0x1000 + i % 40:032x},{(0x9e3779b97f4a7c15 * (i + 1)) % (1 << 128):032x}")
PY
start_sandbox --certs "$work/big.csv" --no-rate-limit
CLOUDFLARE_API_TOKEN=$token /usr/bin/time -v "$bin" revoke "$work/big.csv" --base-url "$url" \
  --rate 1000000/s --yes -q -o "$work/out.csv" 2>&1 >/dev/null | grep -E "Maximum resident|Elapsed|User time|System time"
