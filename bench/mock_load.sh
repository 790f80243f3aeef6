#!/usr/bin/env bash
# bench/mock_load.sh - load benchmark of the mock LLM server (cx-mock), run as its own process.
#
# 1. Throughput: wrk (Debian's package) with keep-alive POSTs to /v1/chat/completions at zero
#    latency; target >= 30,000 requests/s on a 2-core machine.
# 2. Concurrency: bench_mock_conc opens N connections and sends one request on each at once,
#    for every N in CONC_LIST and latency L in LAT_LIST (ms); it reports the p50/p99 latency
#    error seen by the client and by the server's own /stats, the server's peak RSS (VmHWM) and
#    its thread count. Targets: p99 error <= 5 ms, VmHWM < 200 MB, a fixed small thread count.
#    The server is restarted for every run so VmHWM belongs to that run alone.
#
# Every figure printed comes from this run. The machine is shared: run it when it is quiet and
# say so next to the numbers.
#
# Environment: BUILD (build dir, default build/release, configured Release here), DURATION (wrk
# seconds, 10), WRK_THREADS (2), WRK_CONNS (64), THREADS (server workers, 2), CONC_LIST
# ("1000 10000"), LAT_LIST ("100 1000"), PIN (1: server on CPU 0, load generators on CPU 1),
# SKIP_BUILD (1: use the binaries already in BUILD), SKIP_WRK / SKIP_CONC (1: skip a part).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build/release}
DURATION=${DURATION:-10}
WRK_THREADS=${WRK_THREADS:-2}
WRK_CONNS=${WRK_CONNS:-64}
THREADS=${THREADS:-2}
CONC_LIST=${CONC_LIST:-"1000 10000"}
LAT_LIST=${LAT_LIST:-"100 1000"}
PIN=${PIN:-0}

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$BUILD" -j2 --target cx-mock >/dev/null
    # The load generator is standalone C; build it directly if the CMake target (which links
    # the runtime library) cannot be built right now.
    if ! cmake --build "$BUILD" -j2 --target bench_mock_conc >/dev/null 2>&1; then
        mkdir -p "$BUILD/bench"
        ${CC:-cc} -O2 -std=c11 -D_GNU_SOURCE -o "$BUILD/bench/bench_mock_conc" \
            "$ROOT/bench/bench_mock_conc.c"
    fi
fi
MOCK=$BUILD/mockserver/cx-mock
CONC=$BUILD/bench/bench_mock_conc
for b in "$MOCK" "$CONC"; do
    [[ -x "$b" ]] || { echo "mock_load: missing $b (build it or unset SKIP_BUILD)" >&2; exit 1; }
done
if [[ "${SKIP_WRK:-0}" != 1 ]] && ! command -v wrk >/dev/null; then
    echo "mock_load: wrk not found (apt-get install wrk)" >&2
    exit 1
fi

# 10,000 connections need more descriptors than the default soft limit.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

TMP=$(mktemp -d)
PID=""
cleanup() {
    if [[ -n "$PID" ]] && kill -0 "$PID" 2>/dev/null; then
        kill -TERM "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT

server_cpu=()
client_cpu=()
if [[ "$PIN" == 1 ]]; then
    server_cpu=(taskset -c 0)
    client_cpu=(taskset -c 1)
fi

start_server() {
    rm -f "$TMP/port"
    "${server_cpu[@]}" "$MOCK" --port 0 --port-file "$TMP/port" --threads "$THREADS" "$@" \
        >"$TMP/server.log" 2>&1 &
    PID=$!
    for _ in $(seq 1 200); do
        [[ -s "$TMP/port" ]] && break
        kill -0 "$PID" 2>/dev/null || { cat "$TMP/server.log" >&2; exit 1; }
        sleep 0.05
    done
    [[ -s "$TMP/port" ]] || { echo "mock_load: server did not start" >&2; exit 1; }
    PORT=$(cat "$TMP/port")
}

stop_server() {
    kill -TERM "$PID"
    wait "$PID" 2>/dev/null || true
    PID=""
}

echo "mock_load: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ)"
summary=()

if [[ "${SKIP_WRK:-0}" != 1 ]]; then
    start_server --latency 0
    cat >"$TMP/post.lua" <<'EOF'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"mock-1","messages":[{"role":"user","content":"Install package: nginx"}]}'
EOF
    echo
    echo "== throughput: wrk -t$WRK_THREADS -c$WRK_CONNS -d${DURATION}s, keep-alive, zero latency, server threads $THREADS"
    "${client_cpu[@]}" wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d"${DURATION}s" --latency \
        -s "$TMP/post.lua" "http://127.0.0.1:$PORT/v1/chat/completions" | tee "$TMP/wrk.out"
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$TMP/wrk.out")
    bad=$(awk '/Non-2xx or 3xx responses:/ {print $5}' "$TMP/wrk.out")
    hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$PID/status")
    thr=$(awk '/^Threads:/ {print $2}' "/proc/$PID/status")
    stop_server
    summary+=("$(printf '%-34s %12s req/s  non-2xx %s  VmHWM %s kB  threads %s' \
        "wrk keep-alive, latency 0" "$rps" "${bad:-0}" "$hwm" "$thr")")
fi

if [[ "${SKIP_CONC:-0}" != 1 ]]; then
    for lat in $LAT_LIST; do
        for n in $CONC_LIST; do
            start_server --latency "${lat}ms" --connection-timeout 120
            echo
            echo "== concurrency: $n connections, latency $lat ms"
            "${client_cpu[@]}" "$CONC" --port "$PORT" --conns "$n" --latency-ms "$lat" \
                --pid "$PID" | tee "$TMP/conc.out" || true
            line=$(grep '^RESULT' "$TMP/conc.out" || true)
            srv=$(grep '^server error' "$TMP/conc.out" | sed 's/^server error ms (\/stats): //' || true)
            stop_server
            summary+=("$(printf '%-34s %s | server: %s' "$n conns, latency $lat ms" \
                "${line#RESULT }" "${srv%%|*}")")
        done
    done
fi

echo
echo "== summary"
printf '%s\n' "${summary[@]}"
