#!/usr/bin/env bash
# The dashboard in a real browser: headless Chromium (Debian's `chromium`
# package) loads /dashboard from the running demo mesh, runs its script
# against the live JSON, and the rendered DOM must show the three workloads
# (web, emoji, voting) and the edges web -> emoji and web -> voting. A
# screenshot is saved to target/dashboard.png.
#
#   bash .ci/interop-dashboard.sh               # builds and starts the demo
#   bash .ci/interop-dashboard.sh --url URL     # a dashboard already running
#
# Installs chromium if missing (apt-get), prints one line per check, cleans
# up every process it started, and exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

url=""
if [ "${1:-}" = "--url" ]; then
    url="${2:?--url needs the dashboard address}"
fi

. .ci/lib.sh

# --- install what is missing -------------------------------------------------
browser="$(command -v chromium || command -v chromium-browser || true)"
if [ -z "$browser" ]; then
    apt_install chromium fonts-dejavu-core
    browser="$(command -v chromium)"
fi
pass "$("$browser" --version 2>/dev/null | head -1) installed"

# --- the demo mesh ---------------------------------------------------------------
if [ -z "$url" ]; then
    cargo build -q -p mesh-examples --example demo
    # Fixed admin ports may be taken on a shared machine: let the system
    # pick.
    "${CARGO_TARGET_DIR:-target}/debug/examples/demo" --duration 90s --admin-port 0 >"$work/demo.log" 2>&1 &
    pids+=("$!")
    for _ in $(seq 1 120); do
        url="$(sed -n 's/^dashboard: \(http:[^ ]*\/dashboard\)$/\1/p' "$work/demo.log" | head -1)"
        [ -n "$url" ] && break
        if ! kill -0 "${pids[0]}" 2>/dev/null; then
            cat "$work/demo.log"
            fail "the demo exited before printing its dashboard address"
            exit 1
        fi
        sleep 0.5
    done
    if [ -z "$url" ]; then
        cat "$work/demo.log"
        fail "the demo printed no 'dashboard: http://ADDR/dashboard' line"
        exit 1
    fi
fi
pass "dashboard at $url"

# --- wait for data ------------------------------------------------------------
# The page renders whatever the JSON holds; wait until the poller has a few
# rounds and both edges, so that what the browser shows is the mesh at work.
api="${url%/}/api"
ready=0
for _ in $(seq 1 60); do
    status=0
    python3 - "$api" <<'EOF' 2>/dev/null || status=$?
import json, sys, urllib.error, urllib.request
try:
    view = json.load(urllib.request.urlopen(sys.argv[1], timeout=5))
except urllib.error.HTTPError as e:
    sys.exit(3 if e.code == 404 else 1)
edges = {(e["src"], e["dst"]) for e in view["edges"] if e["rps"] > 0}
workloads = {w["name"] for w in view["workloads"] if w["rps"] > 0}
ok = view["rounds"] >= 3 and {("web", "emoji"), ("web", "voting")} <= edges \
    and {"web", "emoji", "voting"} <= workloads
sys.exit(0 if ok else 1)
EOF
    if [ "$status" = 0 ]; then
        ready=1
        break
    fi
    if [ "$status" = 3 ]; then
        fail "$api answers 404: that admin server has no admin.dashboard section"
        exit 1
    fi
    sleep 1
done
if [ "$ready" = 1 ]; then
    pass "the json shows traffic on web, emoji and voting and both edges"
else
    fail "the json never showed traffic on web, emoji and voting and both edges"
    curl -s "$api" | head -c 2000 || true
    echo
fi

# --- the browser ----------------------------------------------------------------
# Virtual time lets the page's timers run without waiting in real time; the
# fetches it makes are real.
chrome() {
    timeout 90 "$browser" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage \
        --no-first-run --hide-scrollbars --user-data-dir="$work/profile" \
        --virtual-time-budget=6000 "$@" 2>>"$work/chromium.log"
}
chrome --dump-dom "$url" >"$work/dom.html" || true
if [ ! -s "$work/dom.html" ]; then
    tail -20 "$work/chromium.log"
    fail "chromium rendered nothing"
    exit 1
fi
pass "chromium rendered $(wc -c <"$work/dom.html") bytes of DOM"

for name in web emoji voting; do
    if grep -q "data-workload=\"$name\"" "$work/dom.html" \
        && grep -q "data-node=\"$name\"" "$work/dom.html"; then
        pass "workload $name has a card and a node in the graph"
    else
        fail "workload $name is missing from the rendered page"
    fi
done
for edge in web:emoji web:voting; do
    if grep -q "data-edge=\"$edge\"" "$work/dom.html"; then
        pass "edge ${edge/:/ -> } is drawn"
    else
        fail "edge ${edge/:/ -> } is missing from the rendered page"
    fi
done
if grep -q 'class="dot live"' "$work/dom.html"; then
    pass "the page says it is live"
else
    fail "the page does not say it is live"
fi

mkdir -p target
chrome --window-size=1440,1000 --screenshot="$PWD/target/dashboard.png" "$url" >/dev/null || true
if [ -s target/dashboard.png ]; then
    pass "screenshot saved to target/dashboard.png"
else
    fail "no screenshot"
fi

exit "$failed"
