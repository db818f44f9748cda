#!/usr/bin/env bash
# The sidecar against a direct connection, HAProxy and nginx, side by side.
#
#     benches/compare.sh              # >= 5 interleaved rounds, writes benches/RESULTS.md
#     benches/compare.sh --quick      # one short round, to check that everything starts
#     benches/compare.sh --rounds 7 --duration 8 --out /tmp/results.md
#     benches/compare.sh --allocators # also glibc, mimalloc and jemalloc side by side
#
# One backend (the `hello` example) and, in front of it, on 127.0.0.1 only:
#
#   direct        the backend itself
#   sidecar-in    the sidecar's inbound listener: authorization by
#                 benches/compare/policy.yaml, then request metrics
#   sidecar-out   the same process's outbound listener: route lookup, request
#                 metrics, request timeout, retry with a budget, per-try timeout
#   haproxy       HAProxy, keep-alive to the backend, as many threads as the sidecar
#   nginx         nginx reverse proxy with upstream keep-alive, as many workers
#
# and three hop pairs: two sidecars over mutual TLS (outbound -> inbound),
# the same two over plaintext (both pairs carrying the hop as HTTP/2, so
# that TLS is all they differ in), and two HAProxy instances doing the same
# mutual TLS hop. The load is wrk (HTTP/1.1, 50 connections) and h2load
# (HTTP/2 prior knowledge, 50 streams: 10 connections x 5 streams), each
# run for a fixed time, the front doors interleaved (A B C D E, A B C D E,
# ...) so that drift in the machine's load hits every one of them. Then one
# connection at a time, for the latency a hop adds, and memory: idle, at
# steady load, and holding 1,000 idle keep-alive connections.
#
# With --allocators it also builds the sidecar with each allocator feature
# (`--features mimalloc`, `--features jemalloc`), and runs three more
# sidecars of the same configuration, one per allocator, glibc's included,
# each in a process of its own; their inbound listeners take the HTTP/1.1
# load in the same interleaved rounds (in an order that turns each round),
# and the memory tests. About 2 minutes more.
#
# It installs wrk, h2load (nghttp2-client), haproxy, nginx and curl with
# apt-get when they are missing, builds the sidecar and the backend in
# release, and stops every process it started when it exits, however it
# exits. A run with any failed request or error status stops it: its
# figures would time the error, not the request.
set -Eeuo pipefail

ROUNDS=5
DURATION=4          # seconds per loaded run
SINGLE_DURATION=2   # seconds per single-connection run
THREADS=2           # sidecar runtimes = HAProxy threads = nginx workers
BASE_PORT=18100
IDLE_CONNS=1000
INSTALL=1
BUILD=1
ALLOCATORS=0
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$ROOT/benches/RESULTS.md
COMMAND="benches/compare.sh $*"

usage() {
    sed -n '2,/^set -Eeuo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
    cat <<EOF
Options:
  --rounds N          interleaved rounds (default $ROUNDS; 5 or more for the targets)
  --duration S        seconds per loaded run (default $DURATION)
  --single-duration S seconds per single-connection run (default $SINGLE_DURATION)
  --threads N         proxy threads (default $THREADS)
  --base-port P       first of the ports used, P to P+39 (default $BASE_PORT)
  --idle-conns N      idle keep-alive connections for the memory test (default $IDLE_CONNS)
  --out FILE          where to write the report (default benches/RESULTS.md)
  --quick             1 round, 1 s runs, 100 idle connections: a smoke test
  --no-install        fail instead of installing missing tools
  --no-build          use the release binaries already built
  --allocators        also measure the sidecar built with each allocator feature
EOF
}

while [[ $# -gt 0 ]]; do
    case $1 in
        --rounds) ROUNDS=$2; shift 2 ;;
        --duration) DURATION=$2; shift 2 ;;
        --single-duration) SINGLE_DURATION=$2; shift 2 ;;
        --threads) THREADS=$2; shift 2 ;;
        --base-port) BASE_PORT=$2; shift 2 ;;
        --idle-conns) IDLE_CONNS=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --quick) ROUNDS=1; DURATION=1; SINGLE_DURATION=1; IDLE_CONNS=100; shift ;;
        --no-install) INSTALL=0; shift ;;
        --no-build) BUILD=0; shift ;;
        --allocators) ALLOCATORS=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done

CONF=$ROOT/benches/compare
WORK=$(mktemp -d /tmp/mesh-compare.XXXXXX)
PIDS=()

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [[ -n ${KEEP_WORK:-} ]]; then
        echo "work files kept in $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# A command that fails stops the script (set -e): say which, and keep the
# logs.
trap 'status=$?; echo "compare.sh: line $LINENO: \"$BASH_COMMAND\" failed ($status); logs kept in $WORK" >&2; KEEP_WORK=1' ERR

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# --- tools -----------------------------------------------------------------

install_missing() {
    local -a packages=()
    command -v wrk >/dev/null || packages+=(wrk)
    command -v h2load >/dev/null || packages+=(nghttp2-client)
    command -v haproxy >/dev/null || packages+=(haproxy)
    command -v nginx >/dev/null || packages+=(nginx)
    command -v python3 >/dev/null || packages+=(python3)
    command -v curl >/dev/null || packages+=(curl)
    # pgrep finds nginx's workers, whose CPU time and memory are nginx's:
    # without it, only the master's would be counted.
    command -v pgrep >/dev/null || packages+=(procps)
    [[ ${#packages[@]} -eq 0 ]] && return
    if [[ $INSTALL -eq 0 ]]; then
        echo "missing: ${packages[*]} (run without --no-install to install them)" >&2
        exit 1
    fi
    if ! command -v apt-get >/dev/null; then
        echo "missing: ${packages[*]}; install them (this script installs with apt-get only)" >&2
        exit 1
    fi
    local sudo=
    [[ $(id -u) -ne 0 ]] && sudo=sudo
    log "installing ${packages[*]}"
    $sudo apt-get update -qq
    # Debian starts nginx and haproxy services on install; they are not used.
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${packages[@]}" >/dev/null
}

install_missing
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/examples
ALLOCS=(mimalloc jemalloc)
if [[ $BUILD -eq 1 ]]; then
    # Cargo writes every build of the example to the same path: each
    # allocator's binary is copied aside (a rename, so a running copy is
    # never overwritten), and the default build comes last.
    if [[ $ALLOCATORS -eq 1 ]]; then
        for alloc in "${ALLOCS[@]}"; do
            log "building the sidecar with --features $alloc (release)"
            (cd "$ROOT" && cargo build --release -q -p mesh-examples --example sidecar --features "$alloc")
            cp "$BIN/sidecar" "$BIN/sidecar-$alloc.tmp"
            mv -f "$BIN/sidecar-$alloc.tmp" "$BIN/sidecar-$alloc"
        done
    fi
    log "building the sidecar and the backend (release)"
    (cd "$ROOT" && cargo build --release -q -p mesh-examples --example sidecar --example hello)
fi
SIDECAR=$BIN/sidecar
HELLO=$BIN/hello
for binary in "$SIDECAR" "$HELLO"; do
    if [[ ! -x $binary ]]; then
        echo "$binary is missing; run without --no-build once" >&2
        exit 1
    fi
done
if [[ $ALLOCATORS -eq 1 ]]; then
    for alloc in "${ALLOCS[@]}"; do
        if [[ ! -x $BIN/sidecar-$alloc ]]; then
            echo "$BIN/sidecar-$alloc is missing; run without --no-build once" >&2
            exit 1
        fi
    done
fi

# --- ports and processes -----------------------------------------------------

P_BACKEND=$BASE_PORT
P_SIDECAR_IN=$((BASE_PORT + 1))
P_SIDECAR_OUT=$((BASE_PORT + 2))
P_SIDECAR_ADMIN=$((BASE_PORT + 3))
P_HAPROXY=$((BASE_PORT + 4))
P_NGINX=$((BASE_PORT + 5))
P_NGINX_H2=$((BASE_PORT + 6))
P_MTLS_OUT=$((BASE_PORT + 10))
P_MTLS_OUT_ADMIN=$((BASE_PORT + 11))
P_MTLS_IN=$((BASE_PORT + 12))
P_MTLS_IN_ADMIN=$((BASE_PORT + 13))
P_MTLS_IN_UNUSED=$((BASE_PORT + 14))
P_PLAIN_OUT=$((BASE_PORT + 15))
P_PLAIN_OUT_ADMIN=$((BASE_PORT + 16))
P_PLAIN_IN=$((BASE_PORT + 17))
P_PLAIN_IN_ADMIN=$((BASE_PORT + 18))
P_PLAIN_IN_UNUSED=$((BASE_PORT + 19))
P_HA_MTLS_OUT=$((BASE_PORT + 20))
P_HA_MTLS_IN=$((BASE_PORT + 21))
# The allocator sidecars: inbound, outbound (unused), admin for each.
declare -A P_ALLOC_IN P_ALLOC_OUT P_ALLOC_ADMIN
i=0
for alloc in glibc "${ALLOCS[@]}"; do
    P_ALLOC_IN[$alloc]=$((BASE_PORT + 22 + 3 * i))
    P_ALLOC_OUT[$alloc]=$((BASE_PORT + 23 + 3 * i))
    P_ALLOC_ADMIN[$alloc]=$((BASE_PORT + 24 + 3 * i))
    i=$((i + 1))
done

for port in $(seq "$BASE_PORT" $((BASE_PORT + 39))); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "127.0.0.1:$port is in use; pick other ports with --base-port" >&2
        exit 1
    fi
done

# render TEMPLATE OUT KEY=VALUE...: replaces each @KEY@ in TEMPLATE.
render() {
    local template=$1 out=$2 text pair
    shift 2
    text=$(<"$template")
    for pair in "$@" "WORK=$WORK" "THREADS=$THREADS" "BACKEND=$P_BACKEND"; do
        text=${text//@${pair%%=*}@/${pair#*=}}
    done
    printf '%s\n' "$text" >"$out"
}

# start NAME COMMAND...: runs COMMAND in the background, logging to WORK/NAME.log.
declare -A PID
start() {
    local name=$1
    shift
    "$@" >"$WORK/$name.log" 2>&1 &
    PID[$name]=$!
    PIDS+=("$!")
}

wait_port() {
    local port=$1 i
    for i in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on 127.0.0.1:$port; logs in $WORK" >&2
    KEEP_WORK=1
    exit 1
}

wait_ready() {
    local port=$1 i
    for i in $(seq 100); do
        [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/ready") == 200 ]] && return 0
        sleep 0.1
    done
    echo "the sidecar with admin 127.0.0.1:$port never became ready; logs in $WORK" >&2
    KEEP_WORK=1
    exit 1
}

log "certificates"
"$SIDECAR" certs ca --trust-domain bench.local --out "$WORK/ca" >/dev/null
"$SIDECAR" certs issue --ca "$WORK/ca" --identity spiffe://bench.local/ns/bench/sa/client \
    --ttl 24h --out "$WORK/client" >/dev/null
"$SIDECAR" certs issue --ca "$WORK/ca" --identity spiffe://bench.local/ns/bench/sa/backend \
    --ttl 24h --out "$WORK/backend" >/dev/null
# HAProxy reads the certificate chain and the key from one file.
mkdir -p "$WORK/haproxy" "$WORK/nginx-tmp"
cat "$WORK/client/tls.crt" "$WORK/client/tls.key" >"$WORK/haproxy/client.pem"
cat "$WORK/backend/tls.crt" "$WORK/backend/tls.key" >"$WORK/haproxy/server.pem"
cp "$WORK/ca/ca.crt" "$WORK/haproxy/ca.crt" 2>/dev/null || cp "$WORK/backend/ca.crt" "$WORK/haproxy/ca.crt"

log "starting the backend and the front doors"
cp "$CONF/policy.yaml" "$WORK/policy.yaml"
start backend "$HELLO" "127.0.0.1:$P_BACKEND" backend
wait_port "$P_BACKEND"

render "$CONF/sidecar.yaml" "$WORK/sidecar.yaml" SIDECAR_IN="$P_SIDECAR_IN" \
    SIDECAR_OUT="$P_SIDECAR_OUT" SIDECAR_ADMIN="$P_SIDECAR_ADMIN"
render "$CONF/haproxy.cfg" "$WORK/haproxy.cfg" LISTEN="$P_HAPROXY"
render "$CONF/nginx.conf" "$WORK/nginx.conf" LISTEN="$P_NGINX" LISTEN_H2="$P_NGINX_H2"
start sidecar "$SIDECAR" run --config "$WORK/sidecar.yaml"
start haproxy haproxy -db -f "$WORK/haproxy.cfg"
start nginx nginx -e "$WORK/nginx-error.log" -p "$WORK" -c "$WORK/nginx.conf"

mtls_identity() { printf 'identity:\n  dir: %s' "$WORK/$1"; }
render "$CONF/pair-out.yaml" "$WORK/mtls-out.yaml" IDENTITY="$(mtls_identity client)" \
    LISTEN="$P_MTLS_OUT" ADMIN="$P_MTLS_OUT_ADMIN" PEER="$P_MTLS_IN" TLS=mtls \
    SERVER_IDENTITY="identity: spiffe://bench.local/ns/bench/sa/backend"
render "$CONF/pair-in.yaml" "$WORK/mtls-in.yaml" IDENTITY="$(mtls_identity backend)" \
    LISTEN="$P_MTLS_IN" ADMIN="$P_MTLS_IN_ADMIN" OUT_UNUSED="$P_MTLS_IN_UNUSED" INBOUND_TLS=strict
render "$CONF/pair-out.yaml" "$WORK/plain-out.yaml" IDENTITY= SERVER_IDENTITY= \
    LISTEN="$P_PLAIN_OUT" ADMIN="$P_PLAIN_OUT_ADMIN" PEER="$P_PLAIN_IN" TLS=plaintext
render "$CONF/pair-in.yaml" "$WORK/plain-in.yaml" IDENTITY= \
    LISTEN="$P_PLAIN_IN" ADMIN="$P_PLAIN_IN_ADMIN" OUT_UNUSED="$P_PLAIN_IN_UNUSED" INBOUND_TLS=disabled
render "$CONF/haproxy-mtls-out.cfg" "$WORK/haproxy-mtls-out.cfg" LISTEN="$P_HA_MTLS_OUT" \
    PEER="$P_HA_MTLS_IN" CERTS="$WORK/haproxy"
render "$CONF/haproxy-mtls-in.cfg" "$WORK/haproxy-mtls-in.cfg" LISTEN="$P_HA_MTLS_IN" \
    CERTS="$WORK/haproxy"
start mtls-in "$SIDECAR" run --config "$WORK/mtls-in.yaml"
start mtls-out "$SIDECAR" run --config "$WORK/mtls-out.yaml"
start plain-in "$SIDECAR" run --config "$WORK/plain-in.yaml"
start plain-out "$SIDECAR" run --config "$WORK/plain-out.yaml"
start ha-mtls-in haproxy -db -f "$WORK/haproxy-mtls-in.cfg"
start ha-mtls-out haproxy -db -f "$WORK/haproxy-mtls-out.cfg"

ALLOC_DOORS=()
if [[ $ALLOCATORS -eq 1 ]]; then
    for alloc in glibc "${ALLOCS[@]}"; do
        render "$CONF/sidecar.yaml" "$WORK/alloc-$alloc.yaml" SIDECAR_IN="${P_ALLOC_IN[$alloc]}" \
            SIDECAR_OUT="${P_ALLOC_OUT[$alloc]}" SIDECAR_ADMIN="${P_ALLOC_ADMIN[$alloc]}"
        binary=$BIN/sidecar-$alloc
        [[ $alloc == glibc ]] && binary=$SIDECAR
        start "alloc-$alloc" "$binary" run --config "$WORK/alloc-$alloc.yaml"
        ALLOC_DOORS+=("alloc-$alloc")
    done
fi

for port in $P_SIDECAR_IN $P_SIDECAR_OUT $P_HAPROXY $P_NGINX $P_NGINX_H2 $P_MTLS_OUT \
    $P_MTLS_IN $P_PLAIN_OUT $P_PLAIN_IN $P_HA_MTLS_OUT $P_HA_MTLS_IN; do
    wait_port "$port"
done
for port in $P_SIDECAR_ADMIN $P_MTLS_OUT_ADMIN $P_MTLS_IN_ADMIN $P_PLAIN_OUT_ADMIN $P_PLAIN_IN_ADMIN; do
    wait_ready "$port"
done
for door in "${ALLOC_DOORS[@]}"; do
    wait_port "${P_ALLOC_IN[${door#alloc-}]}"
    wait_ready "${P_ALLOC_ADMIN[${door#alloc-}]}"
done
# nginx binds its ports, then forks its workers: the processes counted for
# it are read once, so every worker must be there first, however long a
# loaded machine takes to fork them.
for i in $(seq 100); do
    [[ $(pgrep -c -P "${PID[nginx]}" || true) -ge $THREADS ]] && break
    if [[ $i -eq 100 ]]; then
        echo "nginx did not start its $THREADS workers; logs in $WORK" >&2
        KEEP_WORK=1
        exit 1
    fi
    sleep 0.1
done

# The processes whose CPU time and memory count for each front door.
nginx_pids() { echo "${PID[nginx]} $(pgrep -P "${PID[nginx]}" | tr '\n' ' ')"; }
declare -A DOOR_PIDS=(
    [direct]=""
    [sidecar-in]="${PID[sidecar]}"
    [sidecar-out]="${PID[sidecar]}"
    [haproxy]="${PID[haproxy]}"
    [nginx]="$(nginx_pids)"
    [sidecar-mtls-pair]="${PID[mtls-out]} ${PID[mtls-in]}"
    [sidecar-plain-pair]="${PID[plain-out]} ${PID[plain-in]}"
    [haproxy-mtls-pair]="${PID[ha-mtls-out]} ${PID[ha-mtls-in]}"
)
declare -A H1_URL=(
    [direct]="http://127.0.0.1:$P_BACKEND/"
    [sidecar-in]="http://127.0.0.1:$P_SIDECAR_IN/"
    [sidecar-out]="http://127.0.0.1:$P_SIDECAR_OUT/"
    [haproxy]="http://127.0.0.1:$P_HAPROXY/"
    [nginx]="http://127.0.0.1:$P_NGINX/"
    [sidecar-mtls-pair]="http://127.0.0.1:$P_MTLS_OUT/"
    [sidecar-plain-pair]="http://127.0.0.1:$P_PLAIN_OUT/"
    [haproxy-mtls-pair]="http://127.0.0.1:$P_HA_MTLS_OUT/"
)
declare -A H2_URL=(
    [direct]="http://127.0.0.1:$P_BACKEND/"
    [sidecar-in]="http://127.0.0.1:$P_SIDECAR_IN/"
    [sidecar-out]="http://127.0.0.1:$P_SIDECAR_OUT/"
    [haproxy]="http://127.0.0.1:$P_HAPROXY/"
    [nginx]="http://127.0.0.1:$P_NGINX_H2/"
)
for door in "${ALLOC_DOORS[@]}"; do
    DOOR_PIDS[$door]=${PID[$door]}
    H1_URL[$door]="http://127.0.0.1:${P_ALLOC_IN[${door#alloc-}]}/"
done
DOORS=(direct sidecar-in sidecar-out haproxy nginx)
PAIRS=(sidecar-plain-pair sidecar-mtls-pair haproxy-mtls-pair)
# The front doors whose memory is measured.
MEMORY_DOORS=(sidecar-in haproxy nginx "${ALLOC_DOORS[@]}")

# Every request names the service `backend`, which the sidecars' outbound
# listeners route by; the backend and the other proxies ignore it.
for door in "${DOORS[@]}" "${PAIRS[@]}" "${ALLOC_DOORS[@]}"; do
    code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: backend' "${H1_URL[$door]}")
    if [[ $code != 200 ]]; then
        echo "$door answered $code to HTTP/1.1; logs in $WORK" >&2
        KEEP_WORK=1
        exit 1
    fi
done
for door in "${DOORS[@]}"; do
    code=$(curl -s -o /dev/null -w '%{http_code}' --http2-prior-knowledge -H 'Host: backend' "${H2_URL[$door]}")
    if [[ $code != 200 ]]; then
        echo "$door answered $code to HTTP/2; logs in $WORK" >&2
        KEEP_WORK=1
        exit 1
    fi
done

# --- measuring ---------------------------------------------------------------

# cpu_ticks PIDS...: user + system time of the processes, in clock ticks.
cpu_ticks() {
    local total=0 pid fields
    for pid in "$@"; do
        read -ra fields <"/proc/$pid/stat"
        # Fields 14 and 15 (utime, stime); the command name has no spaces here.
        total=$((total + fields[13] + fields[14]))
    done
    echo "$total"
}

# kib FIELD PIDS...: the sum of a /proc/PID/status field (VmRSS, VmHWM), in KiB.
kib() {
    local field=$1 total=0 pid
    shift
    for pid in "$@"; do
        total=$((total + $(awk -v f="$field:" '$1 == f { print $2 }' "/proc/$pid/status")))
    done
    echo "$total"
}

RESULTS=$WORK/results.tsv
printf 'test\tdoor\tround\trequests\tseconds\tp50_us\tp99_us\terrors\tcpu_ticks\trss_kib\n' >"$RESULTS"

# measure TEST DOOR ROUND: one run of TEST (h1, h2, single) against DOOR;
# appends a line to the results.
measure() {
    local test=$1 door=$2 round=$3 out=$WORK/run.out
    # shellcheck disable=SC2206
    local -a pids=(${DOOR_PIDS[$door]})
    local cpu0 cpu1 rss=0 requests seconds p50 p99 errors duration=$DURATION sampler=
    [[ $test == single ]] && duration=$SINGLE_DURATION
    cpu0=$(cpu_ticks "${pids[@]}")
    if [[ ${#pids[@]} -gt 0 ]]; then
        (sleep "$(awk -v d="$duration" 'BEGIN { print d / 2 }')" && kib VmRSS "${pids[@]}" >"$WORK/rss") &
        sampler=$!
        PIDS+=("$sampler")
    fi
    case $test in
        h1 | single)
            local conns=50 threads=2
            [[ $test == single ]] && conns=1 threads=1
            wrk -t"$threads" -c"$conns" -d"${duration}s" -s "$CONF/wrk-report.lua" \
                -H 'Host: backend' "${H1_URL[$door]}" >"$out" 2>&1
            read -r _ requests seconds p50 p99 errors < <(grep '^RESULT' "$out")
            seconds=$(awk -v us="$seconds" 'BEGIN { printf "%.6f", us / 1e6 }')
            ;;
        h2)
            h2load -c10 -m5 -t2 -D "$duration" --log-file="$WORK/h2.log" \
                -H ':authority: backend' "${H2_URL[$door]}" >"$out" 2>&1
            requests=$(awk '/^requests:/ { print $8 }' "$out")
            # h2load counts a 4xx or 5xx answer as a success: add them.
            errors=$(awk '/^requests:/ { e += $10 + $12 } /^status codes:/ { e += $7 + $9 }
                END { print e + 0 }' "$out")
            # "finished in 4.00s," or, for runs under a second, "997.06ms,".
            seconds=$(awk '/^finished in/ {
                v = $3; sub(/,$/, "", v)
                if (v ~ /ms$/) { sub(/ms$/, "", v); v /= 1000 } else { sub(/s$/, "", v) }
                print v }' "$out")
            read -r p50 p99 < <(cut -f3 "$WORK/h2.log" | sort -n | awk '
                { v[NR] = $1 }
                END { if (NR == 0) { print 0, 0 } else { print v[int((NR - 1) * 0.5) + 1], v[int((NR - 1) * 0.99) + 1] } }')
            ;;
    esac
    cpu1=$(cpu_ticks "${pids[@]}")
    if [[ -n $sampler ]]; then
        wait "$sampler" || true
        rss=$(<"$WORK/rss")
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$test" "$door" "$round" "$requests" \
        "$seconds" "$p50" "$p99" "$errors" "$((cpu1 - cpu0))" "$rss" >>"$RESULTS"
    log "$test $door round $round: $requests requests in ${seconds}s, p50 ${p50}us p99 ${p99}us, errors $errors"
    if [[ $errors != 0 || $requests == 0 ]]; then
        echo "$test $door round $round: $errors errors in $requests requests; output in $out, logs in $WORK" >&2
        KEEP_WORK=1
        exit 1
    fi
}

MEM=$WORK/memory.tsv
printf 'what\tdoor\tkib\n' >"$MEM"
for door in "${MEMORY_DOORS[@]}"; do
    # shellcheck disable=SC2086
    printf 'idle\t%s\t%s\n' "$door" "$(kib VmRSS ${DOOR_PIDS[$door]})" >>"$MEM"
done

LOAD_START=$(uptime)
START_EPOCH=$(date +%s)
log "$ROUNDS interleaved rounds; load: $LOAD_START"

# A short warm-up of every front door, so that pools and caches are filled
# before the first measured round.
for door in "${DOORS[@]}" "${PAIRS[@]}" "${ALLOC_DOORS[@]}"; do
    wrk -t1 -c50 -d1s -H 'Host: backend' "${H1_URL[$door]}" >/dev/null 2>&1
done

for round in $(seq "$ROUNDS"); do
    for door in "${DOORS[@]}"; do measure h1 "$door" "$round"; done
    # The allocator sidecars one after another, the first turning each round.
    n=${#ALLOC_DOORS[@]}
    for i in $(seq 0 $((n - 1))); do
        measure h1 "${ALLOC_DOORS[$(((i + round) % n))]}" "$round"
    done
    for door in "${DOORS[@]}"; do measure h2 "$door" "$round"; done
    for door in "${PAIRS[@]}"; do measure h1 "$door" "$round"; done
    for door in "${DOORS[@]}" "${PAIRS[@]}"; do measure single "$door" "$round"; done
done

for door in "${MEMORY_DOORS[@]}" sidecar-plain-pair sidecar-mtls-pair haproxy-mtls-pair; do
    # shellcheck disable=SC2086
    printf 'peak\t%s\t%s\n' "$door" "$(kib VmHWM ${DOOR_PIDS[$door]})" >>"$MEM"
done

log "memory with $IDLE_CONNS idle keep-alive connections"
for door in "${MEMORY_DOORS[@]}"; do
    port=${H1_URL[$door]##*:}
    port=${port%/}
    # shellcheck disable=SC2086
    printf 'before\t%s\t%s\n' "$door" "$(kib VmRSS ${DOOR_PIDS[$door]})" >>"$MEM"
    coproc IDLE { exec python3 "$CONF/idle.py" 127.0.0.1 "$port" "$IDLE_CONNS" backend; }
    PIDS+=("$IDLE_PID")
    idle_pid=$IDLE_PID
    if read -r -t 60 ready count <&"${IDLE[0]}" && [[ $ready == ready ]]; then
        sleep 1
        # shellcheck disable=SC2086
        printf 'conns\t%s\t%s\n' "$door" "$(kib VmRSS ${DOOR_PIDS[$door]})" >>"$MEM"
        log "$door holds $count idle connections"
    else
        log "$door: the idle connections could not all be opened"
    fi
    kill "$idle_pid" 2>/dev/null || true
    wait "$idle_pid" 2>/dev/null || true
done

LOAD_END=$(uptime)
ELAPSED=$(($(date +%s) - START_EPOCH))
log "measured in ${ELAPSED}s; load: $LOAD_END"

python3 "$CONF/report.py" --results "$RESULTS" --memory "$MEM" \
    --command "$COMMAND" --rounds "$ROUNDS" --duration "$DURATION" \
    --single-duration "$SINGLE_DURATION" --threads "$THREADS" --idle-conns "$IDLE_CONNS" \
    --cpu "$(lscpu | awk -F: '/^Model name/ { gsub(/^ +/, "", $2); print $2; exit }')" \
    --cores "$(nproc)" --load-start "$LOAD_START" --load-end "$LOAD_END" \
    --elapsed "$ELAPSED" >"$OUT"
log "wrote $OUT"
