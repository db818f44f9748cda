#!/usr/bin/env bash
# Interop check of /metrics with real consumers:
#   1. a real Prometheus server (Debian's `prometheus` package) scrapes two
#      live instances of examples/inprocess_metrics.rs: both targets are up
#      and a PromQL query returns our series;
#   2. the reference OpenMetrics parser of Python's prometheus-client
#      (prometheus_client.openmetrics.parser) reads each /metrics body.
# `promtool check metrics` is not used: it reads only the older text format
# and rejects valid OpenMetrics.
#
# Installs what is missing (apt-get: prometheus, python3-venv; pip in a venv:
# prometheus-client), prints one line per check, cleans up every process it
# started, and exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

work="$(mktemp -d)"
pids=()
failed=0

cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

pass() { echo "ok: $*"; }
fail() { echo "FAIL: $*"; failed=1; }

# --- install what is missing -------------------------------------------------
need_apt=()
command -v prometheus >/dev/null 2>&1 || need_apt+=(prometheus)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need_apt+=(python3-venv)
if [ "${#need_apt[@]}" -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-cache policy prometheus 2>/dev/null | grep -q 'Candidate: [0-9]'; then
        apt-get update -qq
    fi
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
# The package may start its own service; ours runs on its own port and data
# directory, so it does not matter, but keep the machine quiet.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
    systemctl stop prometheus || true
fi
command -v prometheus >/dev/null && pass "prometheus $(prometheus --version 2>&1 | head -1 | awk '{print $3}') installed"

python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q prometheus-client
pass "python prometheus-client $("$work/venv/bin/python" -c 'import importlib.metadata as m; print(m.version("prometheus-client"))') installed in a venv"

# --- two live instances --------------------------------------------------------
cargo build -q -p mesh-examples --example inprocess_metrics
bin="${CARGO_TARGET_DIR:-target}/debug/examples/inprocess_metrics"
admins=()
for i in 1 2; do
    "$bin" --serve >"$work/instance$i.log" 2>&1 &
    pids+=("$!")
    for _ in $(seq 100); do
        grep -q '^app=' "$work/instance$i.log" && break
        sleep 0.1
    done
    admin="$(sed -n 's/^app=.* admin=\(.*\)$/\1/p' "$work/instance$i.log")"
    if [ -z "$admin" ]; then
        fail "instance $i did not start: $(cat "$work/instance$i.log")"
        exit 1
    fi
    admins+=("$admin")
    pass "instance $i serving, admin on $admin"
done

# --- a real Prometheus scraping both -------------------------------------------
prom_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
cat >"$work/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: mesh
    static_configs:
      - targets: ['${admins[0]}', '${admins[1]}']
EOF
prometheus \
    --config.file="$work/prometheus.yml" \
    --storage.tsdb.path="$work/data" \
    --web.listen-address="127.0.0.1:$prom_port" \
    >"$work/prometheus.log" 2>&1 &
pids+=("$!")
api="http://127.0.0.1:$prom_port/api/v1/query"

# Prints the number of results of a PromQL query whose value is $2 (or any
# value when $2 is empty).
query_count() {
    curl -sf --get "$api" --data-urlencode "query=$1" | python3 -c '
import json, sys
want = sys.argv[1]
data = json.load(sys.stdin)["data"]["result"]
print(sum(1 for r in data if want == "" or r["value"][1] == want))' "${2:-}" 2>/dev/null || echo 0
}

up=0
for _ in $(seq 60); do
    up="$(query_count 'up{job="mesh"}' 1)"
    [ "$up" = 2 ] && break
    sleep 1
done
if [ "$up" = 2 ]; then
    pass "prometheus: up == 1 for both targets"
else
    fail "prometheus: $up of 2 targets up; $(tail -5 "$work/prometheus.log")"
fi

series=0
for _ in $(seq 30); do
    series="$(query_count 'sum by (instance) (response_total{direction="inbound",classification="failure"})')"
    [ "$series" = 2 ] && break
    sleep 1
done
if [ "$series" = 2 ]; then
    pass "prometheus: response_total{classification=\"failure\"} returned for both targets"
else
    fail "prometheus: response_total returned for $series of 2 targets"
fi
# A rate needs two scrapes of each target inside its window; wait for them.
quantiles=0
for _ in $(seq 30); do
    quantiles="$(query_count 'histogram_quantile(0.99, sum by (instance, le) (rate(response_latency_ms_bucket{direction="inbound"}[5s])))')"
    [ "$quantiles" = 2 ] && break
    sleep 1
done
if [ "$quantiles" = 2 ]; then
    pass "prometheus: histogram_quantile over response_latency_ms_bucket for both targets"
else
    fail "prometheus: histogram_quantile returned for $quantiles of 2 targets"
fi

# --- the reference OpenMetrics parser --------------------------------------------
for admin in "${admins[@]}"; do
    curl -sf "http://$admin/metrics" >"$work/metrics.txt"
    if out="$("$work/venv/bin/python" - "$work/metrics.txt" <<'EOF'
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
text = open(sys.argv[1]).read()
families = {f.name: f for f in text_string_to_metric_families(text)}
for name in ["request", "response", "response_latency_ms", "tcp_open", "tcp_read_bytes", "proxy_build", "process_start_time_seconds"]:
    assert name in families, f"no family {name}"
assert families["response_latency_ms"].type == "histogram"
print(f"{len(families)} families, {sum(len(f.samples) for f in families.values())} samples")
EOF
    )"; then
        pass "openmetrics parser: $admin: $out"
    else
        fail "openmetrics parser rejected $admin/metrics: $out"
    fi
done

exit "$failed"
