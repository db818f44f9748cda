#!/usr/bin/env bash
# Interop check of the sidecar's spans with OpenTelemetry's own schema:
# two live reference sidecars on mutual TLS report to a collector on
# 127.0.0.1 that reads every OTLP/HTTP body with the protobuf definitions
# OpenTelemetry publishes (the `opentelemetry-proto` package, through
# protobuf's JSON parser, which refuses unknown fields and wrong types),
# then checks what OTLP's JSON encoding adds to protobuf's: ids in hex.
# A request with a sampled `traceparent` must come back as two spans, the
# client sidecar's the parent of the server sidecar's, both children of the
# caller's span, and the application must get the server sidecar's span as
# its parent. Sidecars stopped by SIGTERM must send the spans they hold.
#
# Installs what is missing (apt-get: python3-venv, curl; pip in a venv:
# opentelemetry-proto), prints one line per check, cleans up every process
# it started, and exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

. .ci/lib.sh

need_apt=()
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need_apt+=(python3-venv)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
if [ "${#need_apt[@]}" -gt 0 ]; then
    apt_install "${need_apt[@]}"
fi
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q opentelemetry-proto
pass "python opentelemetry-proto $("$work/venv/bin/python" -c 'import importlib.metadata as m; print(m.version("opentelemetry-proto"))') installed in a venv"

cargo build -q -p mesh-examples --example sidecar
bin="${CARGO_TARGET_DIR:-target}/debug/examples"
app_port="$(free_port)"; inbound_port="$(free_port)"; outbound_port="$(free_port)"
collector_port="$(free_port)"

# --- the collector, and the application -----------------------------------------
# The collector writes one line per span to spans.txt: service, trace id,
# span id, parent id, kind, name; it answers 400 to a body the schema
# refuses. The application answers each request with its headers.
cat >"$work/collector.py" <<'EOF'
import http.server, json, sys, threading
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

out = open(sys.argv[2], "a", buffering=1)

def hex_id(text, length):
    assert len(text) == 2 * length and all(c in "0123456789abcdef" for c in text), text
    return text

class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        try:
            assert self.path == "/v1/traces", self.path
            assert self.headers["content-type"] == "application/json"
            json_format.Parse(body, ExportTraceServiceRequest())
            doc = json.loads(body)
            for rs in doc["resourceSpans"]:
                attrs = {a["key"]: a["value"]["stringValue"] for a in rs["resource"]["attributes"]}
                for ss in rs["scopeSpans"]:
                    for s in ss["spans"]:
                        out.write(" ".join([attrs["service.name"], hex_id(s["traceId"], 16),
                            hex_id(s["spanId"], 8), hex_id(s["parentSpanId"], 8),
                            str(s["kind"]), s["name"]]) + "\n")
            self.send_response(200)
        except Exception as error:
            out.write(f"REFUSED {error!r}\n")
            self.send_response(400)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass

class App(http.server.BaseHTTPRequestHandler):
    """The application: answers with the request's headers."""
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = str(self.headers).encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

app = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[3])), App)
threading.Thread(target=app.serve_forever, daemon=True).start()
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
EOF
touch "$work/spans.txt"
"$work/venv/bin/python" "$work/collector.py" "$collector_port" "$work/spans.txt" "$app_port" \
    >"$work/collector.log" 2>&1 &
pids+=("$!")

# --- two sidecars ------------------------------------------------------------------
issue_interop_certs "$bin/sidecar" server client
cat >"$work/server.yaml" <<YAML
identity: {dir: $work/server, identity: spiffe://example.org/ns/interop/sa/server}
inbound: {listen: 127.0.0.1:$inbound_port, app: 127.0.0.1:$app_port, tls: strict}
outbound: {listen: 127.0.0.1:0}
admin: {listen: 127.0.0.1:0}
server: {threads: 1}
tracing: {collector: 'http://127.0.0.1:$collector_port', service_name: server}
YAML
cat >"$work/client.yaml" <<YAML
identity: {dir: $work/client, identity: spiffe://example.org/ns/interop/sa/client}
outbound:
  listen: 127.0.0.1:$outbound_port
  services:
    - name: hello
      endpoints: [127.0.0.1:$inbound_port]
      identity: spiffe://example.org/ns/interop/sa/server
admin: {listen: 127.0.0.1:0}
server: {threads: 1}
tracing: {collector: 'http://127.0.0.1:$collector_port', service_name: client}
YAML
sidecars=()
for name in server client; do
    "$bin/sidecar" run --config "$work/$name.yaml" >"$work/$name.log" 2>&1 &
    pids+=("$!")
    sidecars+=("$!")
done

trace=4bf92f3577b34da6a3ce929d0e0e4736
caller=00f067aa0ba902b7
status=""
for _ in $(seq 100); do
    status="$(curl -s -o "$work/headers.txt" -w '%{http_code}' -H 'host: hello' \
        -H "traceparent: 00-$trace-$caller-01" "http://127.0.0.1:$outbound_port/headers" || true)"
    [ "$status" = 200 ] && break
    sleep 0.1
done
if [ "$status" = 200 ]; then
    pass "a request with a sampled traceparent went through the mTLS sidecar pair"
else
    fail "no answer through the sidecar pair: $(tail -5 "$work/server.log" "$work/client.log")"
    exit 1
fi
# Only the last attempt's spans count: earlier ones may have met a sidecar
# that was still starting.
app_parent="$(grep -i '^traceparent:' "$work/headers.txt" | tr -d '\r' | cut -d- -f3)"

server_line="" client_line=""
for _ in $(seq 100); do
    server_line="$(grep "^server $trace [0-9a-f]* [0-9a-f]* 2 " "$work/spans.txt" | grep " $app_parent " | tail -1 || true)"
    if [ -n "$server_line" ]; then
        client_parent="$(echo "$server_line" | cut -d' ' -f4)"
        client_line="$(grep "^client $trace $client_parent $caller 3 GET$" "$work/spans.txt" || true)"
        [ -n "$client_line" ] && break
    fi
    sleep 0.1
done
if grep -q '^REFUSED' "$work/spans.txt"; then
    fail "the OTLP schema refused a body: $(grep '^REFUSED' "$work/spans.txt" | head -1)"
else
    pass "every body the sidecars sent parses as an OTLP ExportTraceServiceRequest"
fi
if [ -n "$server_line" ] && [ -n "$client_line" ]; then
    pass "spans chain caller $caller -> client sidecar (kind client) -> server sidecar (kind server) -> app"
else
    fail "spans missing or not chained; collector saw: $(cat "$work/spans.txt"); app got parent $app_parent"
fi

# A sidecar that stops sends the spans it still holds: one more request,
# then SIGTERM at once, well within the second a batch waits to fill.
last=5bf92f3577b34da6a3ce929d0e0e4736
curl -s -o /dev/null -H 'host: hello' -H "traceparent: 00-$last-$caller-01" \
    "http://127.0.0.1:$outbound_port/headers" || true
kill -TERM "${sidecars[@]}"
for pid in "${sidecars[@]}"; do
    wait "$pid" 2>/dev/null || true
done
if grep -q "^client $last [0-9a-f]* $caller 3 " "$work/spans.txt" \
    && grep -q "^server $last " "$work/spans.txt"; then
    pass "sidecars stopped by SIGTERM sent the spans of their last request"
else
    fail "spans of the last request lost at shutdown; collector saw: $(grep " $last " "$work/spans.txt" || true)"
fi

exit "$failed"
