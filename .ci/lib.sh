# Shared by the interop scripts, which source it after `set -euo pipefail`:
# a work directory, the processes to stop on exit, one line per check, and
# installing the Debian packages a check needs when they are missing.

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

# apt_install PACKAGE...: installs the packages, refreshing the package
# lists first only when they do not know the first package.
apt_install() {
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-cache policy "$1" 2>/dev/null | grep 'Candidate: [0-9]' >/dev/null; then
        $sudo apt-get update -qq
    fi
    $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# free_port: prints a TCP port on 127.0.0.1 that nothing listens on now.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# issue_interop_certs SIDECAR_BIN NAME...: a development CA in $work/ca and,
# for each NAME, a certificate for spiffe://example.org/ns/interop/sa/NAME
# in $work/NAME.
issue_interop_certs() {
    local bin="$1"
    shift
    "$bin" certs ca --trust-domain example.org --out "$work/ca" >/dev/null
    for name in "$@"; do
        "$bin" certs issue --ca "$work/ca" \
            --identity "spiffe://example.org/ns/interop/sa/$name" --out "$work/$name" >/dev/null
    done
}
