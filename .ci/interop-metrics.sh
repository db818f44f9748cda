#!/usr/bin/env bash
# Interop check of /metrics with real consumers:
#   1. a real Prometheus server (Debian's `prometheus` package) scrapes two
#      live reference sidecars that carry mTLS traffic between them: both
#      targets are up and PromQL queries return our series;
#   2. the reference OpenMetrics parser of Python's prometheus-client
#      (prometheus_client.openmetrics.parser) reads each /metrics body
#      that asks for OpenMetrics;
#   3. `promtool check metrics` (from the same Debian package) reads each
#      /metrics body in the Prometheus text format 0.0.4, which is what a
#      request without an OpenMetrics Accept gets. promtool reads only that
#      format: given OpenMetrics, it finds counters whose HELP and TYPE name
#      no sample, and a `\"` in HELP is a parse error to it.
# Each answer's Content-Type must be the format asked for.
#
# Installs what is missing (apt-get: prometheus, python3-venv; pip in a venv:
# prometheus-client), prints one line per check, cleans up every process it
# started, and exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

. .ci/lib.sh

# --- install what is missing -------------------------------------------------
need_apt=()
command -v prometheus >/dev/null 2>&1 || need_apt+=(prometheus)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need_apt+=(python3-venv)
if [ "${#need_apt[@]}" -gt 0 ]; then
    apt_install "${need_apt[@]}"
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

# --- two live sidecars ------------------------------------------------------------
# curl -> client sidecar (outbound) == mTLS ==> server sidecar (inbound) -> hello.
# The two sidecars are the two scrape targets: one carries outbound traffic,
# the other inbound, both with TLS labels; /status/503 makes failures.
cargo build -q -p mesh-examples --example sidecar --example hello
bin="${CARGO_TARGET_DIR:-target}/debug/examples"
app_port="$(free_port)"; inbound_port="$(free_port)"; outbound_port="$(free_port)"
admins=("127.0.0.1:$(free_port)" "127.0.0.1:$(free_port)")

"$bin/hello" "127.0.0.1:$app_port" hello >"$work/hello.log" 2>&1 &
pids+=("$!")
issue_interop_certs "$bin/sidecar" server client
cat >"$work/server.yaml" <<YAML
identity: {dir: $work/server, identity: spiffe://example.org/ns/interop/sa/server}
inbound: {listen: 127.0.0.1:$inbound_port, app: 127.0.0.1:$app_port, tls: strict}
outbound: {listen: 127.0.0.1:0}
admin: {listen: ${admins[0]}}
server: {threads: 1}
YAML
cat >"$work/client.yaml" <<YAML
identity: {dir: $work/client, identity: spiffe://example.org/ns/interop/sa/client}
inbound: {listen: 127.0.0.1:0, app: 127.0.0.1:$app_port}
outbound:
  listen: 127.0.0.1:$outbound_port
  services:
    - name: hello
      endpoints: [127.0.0.1:$inbound_port]
      identity: spiffe://example.org/ns/interop/sa/server
admin: {listen: ${admins[1]}}
server: {threads: 1}
YAML
for name in server client; do
    "$bin/sidecar" run --config "$work/$name.yaml" >"$work/$name.log" 2>&1 &
    pids+=("$!")
done
i=0
for admin in "${admins[@]}"; do
    i=$((i + 1))
    ready=""
    for _ in $(seq 100); do
        ready="$(curl -sf "http://$admin/ready" || true)"
        [ -n "$ready" ] && break
        sleep 0.1
    done
    if [ -z "$ready" ]; then
        fail "sidecar $i not ready on $admin: $(tail -5 "$work/server.log" "$work/client.log")"
        exit 1
    fi
    pass "sidecar $i ready, admin on $admin"
done

# Prints the HTTP status of one request through the pair.
through_mesh() {
    curl -s -o /dev/null -w '%{http_code}' -H 'host: hello' "http://127.0.0.1:$outbound_port$1"
}
unexpected=0
for n in $(seq 50); do
    if [ $((n % 10)) = 0 ]; then
        [ "$(through_mesh /status/503)" = 503 ] || unexpected=$((unexpected + 1))
    else
        [ "$(through_mesh /hello)" = 200 ] || unexpected=$((unexpected + 1))
    fi
done
if [ "$unexpected" = 0 ]; then
    pass "50 requests through the mTLS sidecar pair, 1 in 10 answered 503 on purpose"
else
    fail "$unexpected of 50 requests through the sidecar pair got an unexpected status"
fi
# Keep traffic flowing while Prometheus scrapes, so rates have samples.
(
    while true; do
        through_mesh /hello >/dev/null
        through_mesh /status/503 >/dev/null
        sleep 0.2
    done
) &
pids+=("$!")

# --- a real Prometheus scraping both -------------------------------------------
prom_port="$(free_port)"
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
    series="$(query_count 'sum by (instance) (response_total{tls="true",classification="failure"})')"
    [ "$series" = 2 ] && break
    sleep 1
done
if [ "$series" = 2 ]; then
    pass "prometheus: response_total{tls=\"true\",classification=\"failure\"} returned for both targets"
else
    fail "prometheus: response_total returned for $series of 2 targets"
fi
# A rate needs two scrapes of each target inside its window; wait for them.
quantiles=0
for _ in $(seq 30); do
    quantiles="$(query_count 'histogram_quantile(0.99, sum by (instance, le) (rate(response_latency_ms_bucket[5s])))')"
    [ "$quantiles" = 2 ] && break
    sleep 1
done
if [ "$quantiles" = 2 ]; then
    pass "prometheus: histogram_quantile over response_latency_ms_bucket for both targets"
else
    fail "prometheus: histogram_quantile returned for $quantiles of 2 targets"
fi

# Fetches /metrics of admin $1 into $work/metrics.txt with the Accept
# header $2 (curl's own `*/*` when empty), and checks that the answer's
# Content-Type is $3.
fetch_metrics() {
    local accept=()
    [ -n "$2" ] && accept=(-H "Accept: $2")
    local got
    got="$(curl -sf "${accept[@]}" -o "$work/metrics.txt" -w '%{content_type}' "http://$1/metrics")" || {
        fail "GET http://$1/metrics (Accept: ${2:-*/*}) failed"
        return 1
    }
    if [ "$got" != "$3" ]; then
        fail "GET http://$1/metrics (Accept: ${2:-*/*}) answered Content-Type '$got', not '$3'"
        return 1
    fi
}
openmetrics_type='application/openmetrics-text; version=1.0.0; charset=utf-8'
text_type='text/plain; version=0.0.4; charset=utf-8'

# --- the reference OpenMetrics parser --------------------------------------------
for admin in "${admins[@]}"; do
    fetch_metrics "$admin" 'application/openmetrics-text; version=1.0.0' "$openmetrics_type" || continue
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

# --- promtool on the text format 0.0.4 ---------------------------------------------
# promtool exits 1 when it cannot parse the text and 3 when it parses it
# but its lint finds names against Prometheus' naming conventions. One
# finding is expected and kept: `response_latency_ms` abbreviates its unit,
# and is the name Linkerd's proxy gives the histogram that dashboards and
# `linkerd viz` query. Any other finding fails.
expected_lint='response_latency_ms metric names should not contain abbreviated units'
for admin in "${admins[@]}"; do
    for accept in "" "text/plain" "text/plain; version=0.0.4"; do
        fetch_metrics "$admin" "$accept" "$text_type" || continue
        rc=0
        out="$(promtool check metrics <"$work/metrics.txt" 2>&1)" || rc=$?
        unexpected="$(printf '%s\n' "$out" | grep -vxF -e "$expected_lint" -e '' || true)"
        if [ "$rc" = 0 ] || { [ "$rc" = 3 ] && [ -z "$unexpected" ]; }; then
            pass "promtool check metrics: $admin/metrics (Accept: ${accept:-*/*}): $(grep -c '^# TYPE' "$work/metrics.txt") families, parsed, no lint finding but the expected one"
        else
            fail "promtool check metrics rejected $admin/metrics (Accept: ${accept:-*/*}), exit $rc: $out"
        fi
    done
done

exit "$failed"
