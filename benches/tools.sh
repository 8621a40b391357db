#!/usr/bin/env bash
# churn beside the load generators people know, against the same servers, a new
# connection per request and the same side closing first:
#
#   HTTP (churn's baseline-server answering with Connection: close, so the server
#   closes first):  churn --workers 2,  wrk -t2,  h2load -t2
#   redis-server (PING, the client closing first):  churn --workers 2,
#                   redis-benchmark -k 0 --threads 2
#
# Interleaved rounds (every tool once per round), medians of ROUNDS; for each,
# connections per second and the client's CPU per connection (user + system of
# the tool's whole process, from /usr/bin/time, over the connections it made).
# A tool that is not installed is skipped, saying so. Cores are shared: the load
# average is printed before and after.
#
# Everything runs in a network namespace of its own (p2pchat-tools-PID, only its
# loopback up, removed on exit), so the host's connections, TIME_WAIT sockets
# and firewall rules do not weigh on one tool more than another. That needs root
# and `ip` (iproute2); without them the script says so and exits 0.
#
#   benches/tools.sh                  # ROUNDS=5 DURATION=5 CONCURRENCY=50
#   ROUNDS=3 DURATION=3 benches/tools.sh
#
# Results and how to read them: docs/BENCHMARKS.md, "churn beside wrk, h2load
# and redis-benchmark".
set -u

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5}
CONCURRENCY=${CONCURRENCY:-50}
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    echo "skipped: benches/tools.sh makes a network namespace, which needs root"
    exit 0
fi
if ! command -v ip >/dev/null; then
    echo "skipped: benches/tools.sh needs ip (apt-get install iproute2) for its network namespace"
    exit 0
fi

cargo build --release --quiet --bin churn || exit 1
CHURN=target/release/churn

NS=p2pchat-tools-$$
work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    # Whatever else still runs in the namespace is ours too.
    ip netns pids "$NS" 2>/dev/null | xargs -r kill 2>/dev/null
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
    ip netns delete "$NS" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
ip netns add "$NS" || { echo "cannot make network namespace $NS" >&2; exit 1; }
ip netns exec "$NS" ip link set lo up || exit 1
# Runs "$@" inside the namespace (servers started with `&` call `ip netns exec`
# themselves, so that $! is theirs and not a subshell's).
inside() {
    ip netns exec "$NS" "$@"
}

# Waits up to 10 s for a "listening on ADDR" line in $1; prints the port.
listening_port() {
    for _ in $(seq 100); do
        port=$(grep -o 'listening on [^ ]*' "$1" 2>/dev/null | grep -o '[0-9]*$')
        [ -n "$port" ] && { echo "$port"; return 0; }
        sleep 0.1
    done
    echo "no listening line in $1" >&2
    return 1
}

ip netns exec "$NS" "$CHURN" baseline-server --request-end '\r\n\r\n' --close \
    --reply 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello' \
    2>"$work/http.log" &
pids+=($!)
HTTP_PORT=$(listening_port "$work/http.log") || exit 1
URL="http://127.0.0.1:$HTTP_PORT/"
REQUEST='GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n'

REDIS_PORT=
if command -v redis-server >/dev/null; then
    REDIS_PORT=6379 # the namespace is ours: no other redis to meet
    # Protected mode answers only 127.0.0.1 and ::1; churn connects from its own
    # loopback addresses (127.200.0.x).
    ip netns exec "$NS" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --protected-mode no --save '' --appendonly no \
        >"$work/redis.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do
        grep -q 'Ready to accept' "$work/redis.log" && break
        sleep 0.1
    done
    grep -q 'Ready to accept' "$work/redis.log" || { echo "redis-server did not start" >&2; REDIS_PORT=; }
else
    echo "skipped: redis-server is not installed (apt-get install redis-server)"
fi

# Runs "$@" under /usr/bin/time; the tool's output in $work/out, its CPU seconds
# (user + system) printed.
timed() {
    inside /usr/bin/time -f '%U %S' -o "$work/time" "$@" >"$work/out" 2>"$work/err"
    # The last line: a tool that exits non-zero gets a line saying so first.
    tail -1 "$work/time" | awk '{ print $1 + $2 }'
}

# Each tool: prints "connections/s connections cpu_s", or nothing when skipped.
churn_http() {
    local cpu
    cpu=$(timed "$CHURN" join-leave -t "127.0.0.1:$HTTP_PORT" --request "$REQUEST" \
        -c "$CONCURRENCY" -d "$DURATION" --workers 2 --quiet --json)
    python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(j["ops_per_s"], j["connections"], sys.argv[2])' "$work/out" "$cpu"
}
wrk_http() {
    local cpu
    cpu=$(timed wrk -t2 -c"$CONCURRENCY" -d"${DURATION}s" -H 'Connection: close' "$URL")
    awk -v cpu="$cpu" '/requests in/ { n = $1 } /Requests\/sec/ { r = $2 } END { print r, n, cpu }' "$work/out"
}
h2load_http() {
    # -n, not -D: h2load's timed mode does not finish when the server closes
    # every connection (nghttp2 1.52).
    local cpu n=$((20000 * DURATION))
    cpu=$(timed h2load --h1 -H 'Connection: close' -t2 -c"$CONCURRENCY" -n "$n" "$URL")
    awk -v cpu="$cpu" '/^finished in/ { r = $4 } /^requests:/ { n = $8 } END { print r, n, cpu }' "$work/out"
}
churn_redis() {
    local cpu
    cpu=$(timed "$CHURN" join-leave -t "127.0.0.1:$REDIS_PORT" --request 'PING\r\n' \
        --expect '+PONG\r\n' -c "$CONCURRENCY" -d "$DURATION" --workers 2 --quiet --json)
    python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(j["ops_per_s"], j["connections"], sys.argv[2])' "$work/out" "$cpu"
}
redis_benchmark() {
    local cpu n=$((12000 * DURATION))
    cpu=$(timed redis-benchmark -p "$REDIS_PORT" -c "$CONCURRENCY" -k 0 --threads 2 \
        -n "$n" -t ping_inline --csv)
    awk -F'"' -v cpu="$cpu" -v n="$n" '/PING_INLINE/ { print $4, n, cpu }' "$work/out"
}

tools=()
label() {
    case $1 in
    churn_http) echo "churn --workers 2 (HTTP, server closes)" ;;
    wrk_http) echo "wrk -t2 (HTTP, server closes)" ;;
    h2load_http) echo "h2load -t2 --h1 (HTTP, server closes)" ;;
    churn_redis) echo "churn --workers 2 (redis PING, client closes)" ;;
    redis_benchmark) echo "redis-benchmark -k 0 --threads 2 (PING_INLINE)" ;;
    esac
}
tools+=(churn_http)
if command -v wrk >/dev/null; then tools+=(wrk_http); else echo "skipped: wrk is not installed (apt-get install wrk)"; fi
if command -v h2load >/dev/null; then tools+=(h2load_http); else echo "skipped: h2load is not installed (apt-get install nghttp2-client)"; fi
if [ -n "$REDIS_PORT" ]; then
    tools+=(churn_redis)
    if command -v redis-benchmark >/dev/null; then tools+=(redis_benchmark); else echo "skipped: redis-benchmark is not installed (apt-get install redis-tools)"; fi
fi

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
echo "$ROUNDS rounds of $DURATION s, $CONCURRENCY connections at once"
for round in $(seq "$ROUNDS"); do
    for t in "${tools[@]}"; do
        line=$($t)
        if [ -z "$line" ]; then
            echo "round $round: $t gave no figures:" >&2
            head -5 "$work/err" "$work/out" >&2
            continue
        fi
        echo "$t $line" >>"$work/results"
        echo "round $round: $t $line"
    done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

echo
printf '%-50s %24s %22s\n' "median of $ROUNDS (lowest-highest)" "conn/s" "client CPU us/conn"
for t in "${tools[@]}"; do
    grep "^$t " "$work/results" 2>/dev/null | awk '{ print $2, ($3 > 0 ? 1e6 * $4 / $3 : 0) }' >"$work/$t.rows"
    python3 -c '
import statistics, sys
rows = [tuple(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
if rows:
    r, c = [x[0] for x in rows], [x[1] for x in rows]
    print("%8.0f (%6.0f-%6.0f) %8.1f (%4.1f-%4.1f)" % (statistics.median(r), min(r), max(r), statistics.median(c), min(c), max(c)))
else:
    print("%24s %22s" % ("-", "-"))
' "$work/$t.rows" | { read -r figures; printf '%-50s %s\n' "$(label "$t")" "$figures"; }
done

# churn over each other tool on the same server: connections/s (above 1.0x:
# churn makes more) and CPU per connection (below 1.0x: churn spends less).
ratio() {
    python3 -c '
import statistics, sys
med = lambda p, k: statistics.median(float(l.split()[k]) for l in open(p) if l.strip())
mine, theirs = sys.argv[1], sys.argv[2]
print("%.2fx the conn/s, %.2fx the CPU per connection" % (med(mine, 0) / med(theirs, 0), med(mine, 1) / med(theirs, 1)))
' "$work/$1.rows" "$work/$2.rows" 2>/dev/null
}
for pair in "churn_http wrk_http" "churn_http h2load_http" "churn_redis redis_benchmark"; do
    set -- $pair
    [ -s "$work/$1.rows" ] && [ -s "$work/$2.rows" ] || continue
    printf 'churn against %-16s %s\n' "$2:" "$(ratio "$1" "$2")"
done
