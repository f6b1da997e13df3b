#!/usr/bin/env bash
# bench/run.sh: measure what stepgate costs per request compared with a plain
# Go reverse proxy in front of the same upstream.
#
# It builds stepgate and bench/loadtool, starts an upstream, the development
# IdP, a plain httputil.ReverseProxy, a redis-server of its own and two
# stepgates (one route needing mfa): one keeping its shared state in memory
# (session.store unset), one in that Redis. It checks that a request with a
# minted multi-factor session cookie really gets through both gateways and
# that one without it does not, that a multi-factor access token from the
# IdP gets through the memory gateway and a tampered one does not, and that
# the Redis one really follows the revocation channel in that redis-server;
# then it runs wrk against the three proxies, the memory gateway twice (with
# the cookie, and with the token as Authorization: Bearer), and prints requests/s, p50, p99, peak RSS and CPU-seconds per
# 100 000 requests of each proxy process, and how many commands redis-server
# ran during the Redis gateway's measured run. wrk counts a 302 to the IdP
# as a success, so its Lua hook also counts every response that is not the
# upstream's "200 ok", and any such response fails the run.
#
# CPU per request is the figure to compare: wrk, the upstream and the proxy
# share the machine's cores, so requests/s and latency mostly show how the
# cores were split. The request path is not supposed to touch Redis at all
# (revocations are read from the in-memory copy a follower keeps), so the
# Redis gateway should cost what the memory one does, and redis-server should
# see only the subscription's liveness PINGs while it is measured. A bearer
# request's token is verified once and then found in the gateway's cache (by
# its SHA-256), so it should cost about what a cookie does; what a cache
# miss costs (the signature check) is BenchmarkBearer/miss in ./proxy.
#
# Settings (environment):
#   BENCH_DURATION=10s     wrk -d, per measured run
#   BENCH_THREADS=2        wrk -t
#   BENCH_CONNECTIONS=32   wrk -c
#   BENCH_WARMUP=2s        unmeasured wrk run before each measured one (0 = none)
#   BENCH_ROUNDS=1         rounds of one run per proxy, the order rotating
#   BENCH_PORT_BASE=18400  eight ports from here: upstream, plain proxy, IdP,
#                          stepgate, stepgate admin, stepgate on Redis, its
#                          admin, redis-server
#   BENCH_OUT=bench/out    logs, wrk output and results.txt
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DURATION="${BENCH_DURATION:-10s}"
THREADS="${BENCH_THREADS:-2}"
CONNECTIONS="${BENCH_CONNECTIONS:-32}"
WARMUP="${BENCH_WARMUP:-2s}"
ROUNDS="${BENCH_ROUNDS:-1}"
PORT_BASE="${BENCH_PORT_BASE:-18400}"
OUT="${BENCH_OUT:-$ROOT/bench/out}"

# Fixed on purpose: the cookie is minted with it. Benchmark use only.
SESSION_SECRET="stepgate-bench-session-secret-0123456789abcdef"
API_AUDIENCE="https://api.bench.example"
CLIENT_SECRET="stepgate-bench-client-secret"
PAPE_MFA="http://schemas.openid.net/pape/policies/2007/06/multi-factor"
TARGET_PATH="/api/transfers/1"

die() {
	echo "bench: $*" >&2
	exit 1
}

check_settings() {
	[[ $DURATION =~ ^[1-9][0-9]*[smh]?$ ]] || die "BENCH_DURATION=$DURATION: want a wrk duration such as 10s"
	[[ $WARMUP =~ ^[0-9]+[smh]?$ ]] || die "BENCH_WARMUP=$WARMUP: want a wrk duration such as 2s, or 0"
	[[ $THREADS =~ ^[1-9][0-9]*$ ]] || die "BENCH_THREADS=$THREADS: want a positive integer"
	[[ $CONNECTIONS =~ ^[1-9][0-9]*$ ]] || die "BENCH_CONNECTIONS=$CONNECTIONS: want a positive integer"
	((CONNECTIONS >= THREADS)) || die "BENCH_CONNECTIONS=$CONNECTIONS: want at least BENCH_THREADS=$THREADS (wrk gives each thread a connection)"
	[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "BENCH_ROUNDS=$ROUNDS: want a positive integer"
	if ! [[ $PORT_BASE =~ ^[1-9][0-9]*$ ]] || ((PORT_BASE < 1024 || PORT_BASE > 65528)); then
		die "BENCH_PORT_BASE=$PORT_BASE: want a port between 1024 and 65528"
	fi
}

need_tools() {
	local t need=()
	for t in go curl awk getconf; do
		command -v "$t" >/dev/null || die "$t is required but not installed"
	done
	command -v wrk >/dev/null || need+=(wrk)
	# Debian's redis-server package brings redis-cli (from redis-tools).
	command -v redis-server >/dev/null || [[ -x /usr/bin/redis-server ]] || need+=(redis-server)
	command -v redis-cli >/dev/null || need+=(redis-tools)
	((${#need[@]} == 0)) && return
	if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
		echo "bench: installing ${need[*]} (Debian packages)" >&2
		apt-get update -qq >/dev/null || die "apt-get update failed"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null || die "apt-get install ${need[*]} failed"
	else
		die "${need[*]} required: install the Debian packages (apt-get install ${need[*]}) and run again"
	fi
}

# --- processes -------------------------------------------------------------

PIDS=()
WORK=""

cleanup() {
	local pid i
	for pid in "${PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}"; do
		# Servers drain and exit within a second; do not hang on one that won't.
		for ((i = 0; i < 20; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	if [[ -n $WORK ]]; then
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_busy() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# start NAME CMD...: runs CMD in the background with output to $OUT/NAME.log
# and sets STARTED to its pid.
STARTED=""
start() {
	local name=$1
	shift
	"$@" >"$OUT/$name.log" 2>&1 &
	STARTED=$!
	PIDS+=("$STARTED")
}

# wait_ready NAME PID URL: waits up to 10 s for URL to answer 2xx.
wait_ready() {
	local name=$1 pid=$2 url=$3 i
	for ((i = 0; i < 100; i++)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "bench: $name exited during start-up; last lines of $OUT/$name.log:" >&2
			tail -n 20 "$OUT/$name.log" >&2 || true
			exit 1
		fi
		if curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	echo "bench: $name did not answer $url within 10 s; last lines of $OUT/$name.log:" >&2
	tail -n 20 "$OUT/$name.log" >&2 || true
	exit 1
}

# rcli ARGS...: redis-cli against the benchmark's own redis-server, one
# reply element a line without quotes or numbering.
rcli() {
	redis-cli -h 127.0.0.1 -p "$REDIS_PORT" --raw "$@"
}

# wait_redis PID: waits up to 10 s for the benchmark's redis-server to PONG.
wait_redis() {
	local pid=$1 i
	for ((i = 0; i < 100; i++)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			echo "bench: redis-server exited during start-up; last lines of $OUT/redis.log:" >&2
			tail -n 20 "$OUT/redis.log" >&2 || true
			exit 1
		fi
		if [[ $(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]]; then
			return 0
		fi
		sleep 0.1
	done
	echo "bench: redis-server did not answer PING on port $REDIS_PORT within 10 s; last lines of $OUT/redis.log:" >&2
	tail -n 20 "$OUT/redis.log" >&2 || true
	exit 1
}

# redis_commands: commands redis-server has run so far, from INFO stats.
redis_commands() {
	local n
	n=$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" info stats | tr -d '\r' | awk -F: '$1 == "total_commands_processed" { print $2 }')
	[[ $n =~ ^[0-9]+$ ]] || die "redis-server's INFO stats has no total_commands_processed (got \"$n\")"
	echo "$n"
}

# --- measurements ----------------------------------------------------------

# cpu_ticks PID: user+system clock ticks used so far. The command name in
# field 2 may contain spaces, so fields are counted after its ")".
cpu_ticks() {
	local stat
	stat=$(<"/proc/$1/stat")
	stat=${stat##*) }
	awk '{ print $12 + $13 }' <<<"$stat"
}

# peak_rss_kib PID: VmHWM, the process's peak resident set so far.
peak_rss_kib() {
	awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"
}

# run_wrk NAME URL SECONDS OUTFILE: one wrk run with an API client's Accept
# header and the credential of NAME (CREDENTIAL_OF): the session cookie for
# every proxy, so they get identical requests, but the access token for the
# bearer run.
run_wrk() {
	local name=$1 url=$2 dur=$3 out=$4
	if ! wrk -t"$THREADS" -c"$CONNECTIONS" -d"$dur" --latency -s "$WORK/report.lua" \
		-H "${CREDENTIAL_OF[$name]:-Cookie: $COOKIE}" -H "Accept: application/json" "$url" >"$out" 2>&1; then
		echo "bench: wrk against $name failed; its output:" >&2
		cat "$out" >&2
		exit 1
	fi
}

# measure NAME PID URL ROUND: sets M_rps M_p50 M_p99 M_rss M_cpu, and
# M_rcmd M_rcpu (commands redis-server ran, and its CPU-seconds, during the
# measured run) for every proxy, so a gateway that did reach Redis per
# request shows up as such.
measure() {
	local name=$1 pid=$2 url=$3 round=$4
	local out="$OUT/wrk-$name-$round.txt" before after line
	local requests duration p50 p99 errors bad rcmd0 rcmd1 rcpu0 rcpu1
	if [[ $WARMUP != 0 && $WARMUP != 0[smh] ]]; then
		run_wrk "$name" "$url" "$WARMUP" "$OUT/wrk-$name-$round-warmup.txt"
	fi
	rcmd0=$(redis_commands)
	rcpu0=$(cpu_ticks "$REDIS_PID")
	before=$(cpu_ticks "$pid")
	run_wrk "$name" "$url" "$DURATION" "$out"
	after=$(cpu_ticks "$pid")
	rcpu1=$(cpu_ticks "$REDIS_PID")
	rcmd1=$(redis_commands)
	M_rss=$(peak_rss_kib "$pid")
	# The second INFO itself is one of the commands counted.
	M_rcmd=$((rcmd1 - rcmd0 - 1))
	M_rcpu=$(awk -v t0="$rcpu0" -v t1="$rcpu1" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", (t1 - t0) / hz }')

	line=$(grep '^BENCH ' "$out" || true)
	[[ -n $line ]] || die "no result line in $out (did the wrk Lua done hook run?)"
	read -r requests duration p50 p99 errors bad < <(awk '{
		for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
		print v["requests"], v["duration_us"], v["p50_us"], v["p99_us"], v["errors"], v["bad"]
	}' <<<"$line")
	((requests > 0)) || die "wrk completed no request against $name; see $out"
	((errors == 0)) || die "wrk reported $errors errors (connect, read, write, timeout or status >= 400) against $name; see $out"
	if [[ -z $bad ]] || ((bad != 0)); then
		die "$name answered ${bad:-?} of $requests requests with something other than the upstream's 200 \"ok\"; see $out and $OUT/$name.log"
	fi

	read -r M_rps M_p50 M_p99 M_cpu < <(awk -v n="$requests" -v d="$duration" -v p50="$p50" -v p99="$p99" \
		-v t0="$before" -v t1="$after" -v hz="$CLK_TCK" 'BEGIN {
		printf "%.0f %.3f %.3f %.3f\n", n / (d / 1e6), p50 / 1000, p99 / 1000, ((t1 - t0) / hz) / n * 100000
	}')
	M_rss=$(awk -v k="$M_rss" 'BEGIN { printf "%.1f", k / 1024 }')
	echo "bench: round $round $name: $requests requests, $M_rps req/s" >&2
}

# The proxies measured, in table order, and their column headings.
PROXIES=(plain stepgate stepgate-bearer stepgate-redis)
declare -A HEADING=(
	[plain]="plain proxy"
	[stepgate]="stepgate mem"
	[stepgate-bearer]="stepgate bearer"
	[stepgate-redis]="stepgate redis"
)

declare -A RESULT # RESULT[name,metric,round]
METRICS=(rps p50 p99 rss cpu rcmd rcpu)
declare -A LABEL=(
	[rps]="requests/s"
	[p50]="p50 latency (ms)"
	[p99]="p99 latency (ms)"
	[rss]="peak RSS (MiB)"
	[cpu]="CPU-s per 100k req"
	[rcmd]="redis commands (run)"
	[rcpu]="redis-server CPU-s"
)

record() {
	local name=$1 round=$2
	RESULT[$name,rps,$round]=$M_rps
	RESULT[$name,p50,$round]=$M_p50
	RESULT[$name,p99,$round]=$M_p99
	RESULT[$name,rss,$round]=$M_rss
	RESULT[$name,cpu,$round]=$M_cpu
	RESULT[$name,rcmd,$round]=$M_rcmd
	RESULT[$name,rcpu,$round]=$M_rcpu
}

# value NAME METRIC: the metric of one round, or the median over all rounds
# when ROUND is "median".
value() {
	local name=$1 metric=$2 round=$3 r
	if [[ $round != median ]]; then
		echo "${RESULT[$name,$metric,$round]}"
		return
	fi
	for ((r = 1; r <= ROUNDS; r++)); do
		echo "${RESULT[$name,$metric,$r]}"
	done | median
}

# ratio A B: A/B as "1.06x", or "n/a" when B is not positive.
ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "n/a" }'
}

# round_ratios NAME: NAME's CPU per request over the plain proxy's, one
# line per round. A round measures them within a minute of each other, so
# their ratio varies less than the ratio of medians taken across rounds.
round_ratios() {
	local name=$1 r
	for ((r = 1; r <= ROUNDS; r++)); do
		awk -v a="${RESULT[$name,cpu,$r]}" -v b="${RESULT[plain,cpu,$r]}" 'BEGIN { printf "%.3f\n", a / b }'
	done
}

# median: the median of the numbers on stdin, one a line.
median() {
	sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.10g\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# print_table TITLE ROUND: one row per metric, one column per proxy, each
# stepgate followed by its ratio to the plain proxy. The redis rows count
# what redis-server did while that proxy was measured; they have no ratio.
print_table() {
	local title=$1 round=$2 m name plain v row
	echo
	echo "$title"
	row=$(printf '%-22s %14s' "metric" "${HEADING[plain]}")
	for name in "${PROXIES[@]:1}"; do
		row+=$(printf ' %14s %8s' "${HEADING[$name]}" "ratio")
	done
	echo "$row"
	for m in "${METRICS[@]}"; do
		plain=$(value plain "$m" "$round")
		row=$(printf '%-22s %14s' "${LABEL[$m]}" "$plain")
		for name in "${PROXIES[@]:1}"; do
			v=$(value "$name" "$m" "$round")
			if [[ $m == rcmd || $m == rcpu ]]; then
				row+=$(printf ' %14s %8s' "$v" "")
			else
				row+=$(printf ' %14s %8s' "$v" "$(ratio "$v" "$plain")")
			fi
		done
		echo "${row%"${row##*[! ]}"}"
	done
}

# --- main ------------------------------------------------------------------

check_settings
need_tools
mkdir -p "$OUT"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/stepgate-bench.XXXXXX")
CLK_TCK=$(getconf CLK_TCK)

UP_PORT=$PORT_BASE
PLAIN_PORT=$((PORT_BASE + 1))
IDP_PORT=$((PORT_BASE + 2))
GATE_PORT=$((PORT_BASE + 3))
ADMIN_PORT=$((PORT_BASE + 4))
RGATE_PORT=$((PORT_BASE + 5))
RADMIN_PORT=$((PORT_BASE + 6))
REDIS_PORT=$((PORT_BASE + 7))
for p in "$UP_PORT" "$PLAIN_PORT" "$IDP_PORT" "$GATE_PORT" "$ADMIN_PORT" "$RGATE_PORT" "$RADMIN_PORT" "$REDIS_PORT"; do
	if port_busy "$p"; then
		die "port $p on 127.0.0.1 is busy (ports $PORT_BASE-$REDIS_PORT are needed); stop what listens there or set BENCH_PORT_BASE"
	fi
done
UP_URL="http://127.0.0.1:$UP_PORT"
PLAIN_URL="http://127.0.0.1:$PLAIN_PORT"
ISSUER="http://127.0.0.1:$IDP_PORT"
GATE_URL="http://127.0.0.1:$GATE_PORT"
ADMIN_URL="http://127.0.0.1:$ADMIN_PORT"
RGATE_URL="http://127.0.0.1:$RGATE_PORT"
RADMIN_URL="http://127.0.0.1:$RADMIN_PORT"
REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
# stepgate namespaces a deployment's keys by issuer and client_id
# ("stepgate:<hash>:"); its follower subscribes to that prefix's channel,
# found below.
REDIS_CHANNEL=""

echo "bench: building stepgate and loadtool" >&2
(cd "$ROOT" && CGO_ENABLED=0 go build -tags nodemo -o "$WORK/stepgate" . && CGO_ENABLED=0 go build -o "$WORK/loadtool" ./bench/loadtool) ||
	die "build failed"

# write_routes FILE LISTEN_PORT ADMIN_PORT PUBLIC_URL STORE_LINE: one
# gateway's configuration. Both gateways share the issuer, client_id and
# session secret, so the one minted cookie opens in either; STORE_LINE is
# empty (memory) or a session.store line.
write_routes() {
	local file=$1 listen=$2 admin=$3 public=$4 store_line=$5
	cat >"$file" <<YAML
# Generated by bench/run.sh.
listen: "127.0.0.1:$listen"
admin_listen: "127.0.0.1:$admin"
upstream: "$UP_URL"
public_url: "$public"
insecure_allow_http: true
oidc:
  issuer: "$ISSUER"
  client_id: stepgate
  client_secret: "$CLIENT_SECRET"
session:
  secrets: ["$SESSION_SECRET"]
  lifetime: 1h
$store_line
api:
  audience: "$API_AUDIENCE"
  tokens: jwt
  dpop: optional
levels:
  mfa:
    acr_values: ["$PAPE_MFA"]
    max_age: 1h
    satisfied_by:
      - acr: ["$PAPE_MFA"]
      - amr: [mfa]
routes:
  - name: health
    path: /healthz
    require: public
  - name: static
    path: /static/**
    methods: [GET]
    require: public
  - name: account
    path: /api/account/**
    require: authenticated
  - name: admin
    path: /admin/**
    require: mfa
  - name: transfers
    path: /api/transfers/**
    require: mfa
default: authenticated
YAML
	"$WORK/stepgate" check -config "$file" >"$OUT/check.log" 2>&1 || {
		cat "$OUT/check.log" >&2
		die "stepgate check rejected the generated configuration $file"
	}
}
write_routes "$WORK/routes.yaml" "$GATE_PORT" "$ADMIN_PORT" "$GATE_URL" ""
write_routes "$WORK/routes-redis.yaml" "$RGATE_PORT" "$RADMIN_PORT" "$RGATE_URL" "  store: \"$REDIS_URL\""

cat >"$WORK/report.lua" <<'LUA'
-- Counts every response that is not the upstream's own "200 ok" (wrk itself
-- counts only statuses >= 400 as errors, so a 302 to the IdP would pass),
-- and prints one machine-readable line after wrk's report.
local threads = {}
setup = function(thread) table.insert(threads, thread) end
init = function(args) bad = 0 end
response = function(status, headers, body)
  if status ~= 200 or body ~= "ok\n" then bad = bad + 1 end
end
done = function(summary, latency, requests)
  local e, n = summary.errors, 0
  for _, t in ipairs(threads) do n = n + t:get("bad") end
  io.write(string.format("BENCH requests=%d duration_us=%d p50_us=%.0f p99_us=%.0f errors=%d bad=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout, n))
end
LUA

# A throw-away Redis: no snapshots, no append-only file, loopback only, its
# working directory inside $WORK so nothing is left behind.
mkdir -p "$WORK/redis"
start redis "$(command -v redis-server || echo /usr/bin/redis-server)" --port "$REDIS_PORT" --bind 127.0.0.1 \
	--save "" --appendonly no --dir "$WORK/redis"
REDIS_PID=$STARTED
wait_redis "$REDIS_PID"

start upstream "$WORK/loadtool" upstream -addr "127.0.0.1:$UP_PORT"
UP_PID=$STARTED
wait_ready upstream "$UP_PID" "$UP_URL/"

start idp "$WORK/loadtool" idp -addr "127.0.0.1:$IDP_PORT" -redirect "$GATE_URL/.stepgate/callback" -client-secret "$CLIENT_SECRET" \
	-audience "$API_AUDIENCE"
IDP_PID=$STARTED
wait_ready idp "$IDP_PID" "$ISSUER/.well-known/openid-configuration"

start plain "$WORK/loadtool" plainproxy -addr "127.0.0.1:$PLAIN_PORT" -upstream "$UP_URL"
PLAIN_PID=$STARTED
wait_ready plain "$PLAIN_PID" "$PLAIN_URL/"

start stepgate "$WORK/stepgate" serve -config "$WORK/routes.yaml"
GATE_PID=$STARTED
wait_ready stepgate "$GATE_PID" "$ADMIN_URL/readyz"

# readyz waits for the follower's first full sync with Redis.
start stepgate-redis "$WORK/stepgate" serve -config "$WORK/routes-redis.yaml"
RGATE_PID=$STARTED
wait_ready stepgate-redis "$RGATE_PID" "$RADMIN_URL/readyz"

# The bearer run is the memory gateway again, with the token instead of the
# cookie.
declare -A PID_OF=([plain]=$PLAIN_PID [stepgate]=$GATE_PID [stepgate-bearer]=$GATE_PID [stepgate-redis]=$RGATE_PID)
declare -A URL_OF=([plain]=$PLAIN_URL [stepgate]=$GATE_URL [stepgate-bearer]=$GATE_URL [stepgate-redis]=$RGATE_URL)

COOKIE=$("$WORK/loadtool" cookie -secret "$SESSION_SECRET" -lifetime 1h -issuer "$ISSUER" -client-id stepgate) ||
	die "could not mint a session cookie"
# A real code flow at the IdP, logging in multi-factor: an RFC 9068 access
# token for API_AUDIENCE, valid for an hour (longer than the runs).
TOKEN=$("$WORK/loadtool" token -issuer "$ISSUER" 2>"$OUT/token.log") ||
	die "could not get an access token from the IdP; see $OUT/token.log"
declare -A CREDENTIAL_OF=([stepgate-bearer]="Authorization: Bearer $TOKEN")

# --- correctness pre-check ---------------------------------------------------

# expect NAME WANT_CODE WANT_BODY URL [CURL_ARGS...]: WANT_BODY "" skips the
# body check; WANT_CODE may list alternatives as "401|302".
expect() {
	local name=$1 want=$2 want_body=$3 url=$4 code body
	shift 4
	code=$(curl -sS -o "$WORK/body" -w '%{http_code}' --max-time 5 "$@" "$url") ||
		die "pre-check $name: curl $url failed"
	body=$(<"$WORK/body")
	[[ $code =~ ^($want)$ ]] || die "pre-check $name: $url answered $code; want $want (body: ${body:0:200})"
	if [[ -n $want_body && $body != "$want_body" ]]; then
		die "pre-check $name: $url answered body ${body:0:200}; want the upstream's \"$want_body\""
	fi
}
expect "plain proxy" 200 ok "$PLAIN_URL$TARGET_PATH" -H "Cookie: $COOKIE" -H "Accept: application/json"
# One character changed in the middle of the sealed value: the MAC must fail.
mid=$((${#COOKIE} / 2))
swap=A
[[ ${COOKIE:mid:1} == A ]] && swap=B
TAMPERED="${COOKIE:0:mid}$swap${COOKIE:mid+1}"
for name in stepgate stepgate-redis; do
	url=${URL_OF[$name]}$TARGET_PATH
	expect "$name with session" 200 ok "$url" -H "Cookie: $COOKIE" -H "Accept: application/json"
	expect "$name without session (API)" "401|302" "" "$url" -H "Accept: application/json"
	expect "$name without session (browser)" "401|302" "" "$url" -H "Accept: text/html"
	expect "$name with a tampered cookie" "401|302" "" "$url" -H "Cookie: $TAMPERED" -H "Accept: application/json"
done
# One character of the signature changed: the token must not verify (and
# is no cache hit: the cache is keyed by the whole token).
sig=${TOKEN##*.}
swap=A
[[ ${sig:0:1} == A ]] && swap=B
TAMPERED_TOKEN="${TOKEN%.*}.$swap${sig:1}"
url=$GATE_URL$TARGET_PATH
expect "stepgate with the access token" 200 ok "$url" -H "Authorization: Bearer $TOKEN" -H "Accept: application/json"
expect "stepgate with a tampered access token" 401 "" "$url" -H "Authorization: Bearer $TAMPERED_TOKEN" -H "Accept: application/json"

# The Redis gateway must really be on this redis-server: its follower holds
# a subscription to the revocation channel there, under the client name
# stepgate gives its connections. Without it the "redis" figures would be a
# second memory run.
channels=$(rcli pubsub channels 'stepgate:*revocations') || die "pre-check: redis-cli PUBSUB CHANNELS failed"
REDIS_CHANNEL=$(head -n 1 <<<"$channels")
[[ $REDIS_CHANNEL == stepgate:*:revocations ]] ||
	die "pre-check: redis-server on port $REDIS_PORT has no subscriber on $REDIS_CHANNEL (PUBSUB CHANNELS: ${channels:-none}); stepgate-redis is not following it, see $OUT/stepgate-redis.log"
subs=$(rcli pubsub numsub "$REDIS_CHANNEL" | tail -n 1)
[[ $subs == 1 ]] ||
	die "pre-check: want exactly one subscriber (stepgate-redis) on $REDIS_CHANNEL; PUBSUB NUMSUB says ${subs:-nothing}"
rcli client list | grep -q ' name=stepgate ' ||
	die "pre-check: no redis-server client is named stepgate; see $OUT/stepgate-redis.log"
echo "bench: pre-check passed: the cookie reaches the upstream through both gateways, the access token through stepgate; requests without them, or with them tampered, do not; stepgate-redis follows $REDIS_CHANNEL on redis-server :$REDIS_PORT" >&2

# --- runs --------------------------------------------------------------------

# Each round measures every proxy once; the order rotates by one each round,
# so no proxy always runs first (on a machine still warming up) or right
# after the same neighbour.
declare -A ORDER # ORDER[round]: the proxies in the order measured
n=${#PROXIES[@]}
for ((round = 1; round <= ROUNDS; round++)); do
	for ((i = 0; i < n; i++)); do
		name=${PROXIES[(i + round - 1) % n]}
		ORDER[$round]+="${ORDER[$round]:+, }$name"
		measure "$name" "${PID_OF[$name]}" "${URL_OF[$name]}$TARGET_PATH" "$round"
		record "$name" "$round"
	done
done

# The claim the Redis and bearer runs check: an authenticated mfa request
# through a Redis-backed gateway, or with a (cached) access token, costs at
# most this much CPU of the plain proxy's.
CPU_BUDGET=1.15
{
	echo "machine: $(nproc) CPUs, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), $(uname -sr)"
	echo "toolchain: $(go version | awk '{ print $3 }'); $(wrk -v 2>&1 | awk 'NR == 1 { print $1, $2 }' || true); $(redis-server --version | awk '{ print $1, $2, $3 }')"
	echo "load: wrk -t$THREADS -c$CONNECTIONS -d$DURATION (warm-up $WARMUP) GET $TARGET_PATH with a multi-factor session cookie (bearer: a multi-factor JWT access token instead); $ROUNDS round(s)"
	echo "note: wrk, the upstream and the proxy share the CPUs; CPU-s per 100k requests is the stable comparison"
	echo "note: stepgate mem keeps shared state in memory, stepgate redis in $REDIS_URL; redis rows count what redis-server did during each measured run"
	echo "note: stepgate bearer is the stepgate mem process (api: tokens jwt, dpop optional); its token is verified once, then served from the token cache"
	for ((round = 1; round <= ROUNDS; round++)); do
		print_table "round $round (ratio to the plain proxy; measured ${ORDER[$round]})" "$round"
	done
	if ((ROUNDS > 1)); then
		print_table "median of $ROUNDS rounds (ratio to the plain proxy)" median
	fi
	echo
	for name in "${PROXIES[@]:1}"; do
		ratios=$(round_ratios "$name")
		r=$(median <<<"$ratios")
		verdict=$(awk -v r="$r" -v max="$CPU_BUDGET" 'BEGIN { print (r <= max) ? "within" : "OVER" }')
		echo "CPU per request, ${HEADING[$name]} / plain proxy: median ${r}x of the rounds' $(paste -sd' ' <<<"$ratios" | sed 's/ /x, /g')x; $verdict the ${CPU_BUDGET}x budget"
	done
} | tee "$OUT/results.txt"
echo >&2
echo "bench: logs and wrk output in $OUT" >&2
