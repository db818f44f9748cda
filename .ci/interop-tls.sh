#!/usr/bin/env bash
# Interop of mesh-tls with real TLS tools: openssl s_client and curl against
# a strict mutual TLS server (the inprocess_mtls example, serve-strict mode),
# with certificates minted by the mesh's own CA. One line per check; exits
# non-zero if any check fails.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

. .ci/lib.sh

for tool in openssl curl; do
    command -v "$tool" >/dev/null 2>&1 || apt_install "$tool"
done

echo "== cargo build --example inprocess_mtls"
cargo build -q --example inprocess_mtls
bin="${CARGO_TARGET_DIR:-target}/debug/examples/inprocess_mtls"

check() {
    local name="$1"
    shift
    if "$@" >"$work/check.out" 2>&1; then
        echo "ok   - $name"
    else
        echo "FAIL - $name"
        sed 's/^/       /' "$work/check.out" | tail -n 20
        failed=1
    fi
}

td=example.org
"$bin" ca --trust-domain "$td" --out "$work/ca" >/dev/null
# curl checks the hostname it dials, so the server certificate also names
# localhost; mesh clients match the SPIFFE ID instead.
"$bin" issue --ca "$work/ca" --identity "spiffe://$td/ns/interop/sa/server" \
    --dns localhost --out "$work/server" >/dev/null
"$bin" issue --ca "$work/ca" --identity "spiffe://$td/ns/interop/sa/client" \
    --out "$work/client" >/dev/null

"$bin" serve-strict --certs "$work/server" --listen 127.0.0.1:0 >"$work/server.log" 2>&1 &
server_pid=$!
pids+=("$server_pid")
port=""
for _ in $(seq 1 100); do
    port="$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$work/server.log")"
    [ -n "$port" ] && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$port" ]; then
    echo "FAIL - the strict server did not start"
    cat "$work/server.log"
    exit 1
fi
echo "== strict mTLS server on 127.0.0.1:$port"

request() { printf 'GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n'; sleep 1; }

s_client() {
    request | timeout 10 openssl s_client -connect "127.0.0.1:$port" \
        -servername localhost -CAfile "$work/ca/ca.crt" "$@" 2>&1 || true
}

tls13_negotiated() {
    local out
    out="$(s_client -tls1_3 -cert "$work/client/tls.crt" -cert_chain "$work/client/tls.crt" \
        -key "$work/client/tls.key" -alpn http/1.1)"
    grep -q "New, TLSv1.3" <<<"$out" &&
        grep -q "Verify return code: 0 (ok)" <<<"$out" &&
        grep -q "hello spiffe://$td/ns/interop/sa/client" <<<"$out" ||
        { echo "$out"; return 1; }
}

client_cert_required() {
    local out
    out="$(s_client -tls1_3)"
    grep -q "Acceptable client certificate CA names" <<<"$out" &&
        grep -q "alert certificate required" <<<"$out" &&
        ! grep -q "hello " <<<"$out" ||
        { echo "$out"; return 1; }
}

tls12_refused() {
    local out
    out="$(s_client -tls1_2)"
    grep -q "alert protocol version" <<<"$out" || { echo "$out"; return 1; }
}

curl_mtls_200() {
    local out
    out="$(curl -sS --max-time 10 --resolve "localhost:$port:127.0.0.1" \
        --cacert "$work/ca/ca.crt" --cert "$work/client/tls.crt" --key "$work/client/tls.key" \
        -w ' %{http_code}' "https://localhost:$port/")"
    [ "$out" = "hello spiffe://$td/ns/interop/sa/client 200" ] || { echo "$out"; return 1; }
}

curl_without_cert_fails() {
    ! curl -sS --max-time 10 --resolve "localhost:$port:127.0.0.1" \
        --cacert "$work/ca/ca.crt" "https://localhost:$port/"
}

plaintext_refused() {
    ! curl -sS --max-time 10 "http://127.0.0.1:$port/"
}

check "openssl s_client -tls1_3 with a client certificate negotiates TLSv1.3 and is served" tls13_negotiated
check "openssl s_client -tls1_3 without a client certificate: certificate requested, then refused" client_cert_required
check "openssl s_client -tls1_2 is refused with a protocol_version alert" tls12_refused
check "curl --cert/--key/--cacert gets a 200" curl_mtls_200
check "curl without a client certificate fails" curl_without_cert_fails
check "plaintext HTTP is refused on the strict port" plaintext_refused

exit "$failed"
