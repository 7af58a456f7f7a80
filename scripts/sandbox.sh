# Sourced by the measurement scripts: starts `cfrevoke sandbox ARGS...` on an
# ephemeral loopback port and sets $url, $token and $sandbox (its pid). The
# caller's EXIT trap stops it.
start_sandbox() {
  "$bin" sandbox --listen 127.0.0.1:0 "$@" > "$work/sandbox.out" 2>/dev/null &
  sandbox=$!
  until grep -q '^token=' "$work/sandbox.out" 2>/dev/null; do sleep 0.2; done
  url=$(sed -n 's/^base_url=//p' "$work/sandbox.out")
  token=$(sed -n 's/^token=//p' "$work/sandbox.out")
}
