#!/usr/bin/env bash
# bench/run.sh: measure what stepgate costs per request compared with a plain
# Go reverse proxy in front of the same upstream.
#
# It builds stepgate and bench/loadtool, starts an upstream, the development
# IdP, a plain httputil.ReverseProxy and stepgate (one route needing mfa),
# checks that a request with a minted multi-factor session cookie really gets
# through stepgate and that one without it does not, then runs wrk against
# both proxies and prints requests/s, p50, p99, peak RSS and CPU-seconds per
# 100 000 requests of each proxy process. wrk counts a 302 to the IdP as a
# success, so its Lua hook also counts every response that is not the
# upstream's "200 ok", and any such response fails the run.
#
# CPU per request is the figure to compare: wrk, the upstream and the proxy
# share the machine's cores, so requests/s and latency mostly show how the
# cores were split.
#
# Settings (environment):
#   BENCH_DURATION=10s     wrk -d, per measured run
#   BENCH_THREADS=2        wrk -t
#   BENCH_CONNECTIONS=32   wrk -c
#   BENCH_WARMUP=2s        unmeasured wrk run before each measured one (0 = none)
#   BENCH_ROUNDS=1         plain/stepgate pairs, the order alternating
#   BENCH_PORT_BASE=18400  five ports from here: upstream, plain proxy, IdP,
#                          stepgate, stepgate admin
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
	if ! [[ $PORT_BASE =~ ^[1-9][0-9]*$ ]] || ((PORT_BASE < 1024 || PORT_BASE > 65530)); then
		die "BENCH_PORT_BASE=$PORT_BASE: want a port between 1024 and 65530"
	fi
}

need_tools() {
	local t
	for t in go curl awk getconf; do
		command -v "$t" >/dev/null || die "$t is required but not installed"
	done
	if ! command -v wrk >/dev/null; then
		if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
			echo "bench: installing wrk (Debian package)" >&2
			apt-get update -qq >/dev/null || die "apt-get update failed"
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null || die "apt-get install wrk failed"
		else
			die "wrk is required: install the Debian package (apt-get install wrk) and run again"
		fi
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

# run_wrk NAME URL SECONDS OUTFILE: one wrk run with the session cookie and an
# API client's Accept header, so both proxies get identical requests.
run_wrk() {
	local name=$1 url=$2 dur=$3 out=$4
	if ! wrk -t"$THREADS" -c"$CONNECTIONS" -d"$dur" --latency -s "$WORK/report.lua" \
		-H "Cookie: $COOKIE" -H "Accept: application/json" "$url" >"$out" 2>&1; then
		echo "bench: wrk against $name failed; its output:" >&2
		cat "$out" >&2
		exit 1
	fi
}

# measure NAME PID URL ROUND: sets M_rps M_p50 M_p99 M_rss M_cpu.
measure() {
	local name=$1 pid=$2 url=$3 round=$4
	local out="$OUT/wrk-$name-$round.txt" before after line
	local requests duration p50 p99 errors bad
	if [[ $WARMUP != 0 && $WARMUP != 0[smh] ]]; then
		run_wrk "$name" "$url" "$WARMUP" "$OUT/wrk-$name-$round-warmup.txt"
	fi
	before=$(cpu_ticks "$pid")
	run_wrk "$name" "$url" "$DURATION" "$out"
	after=$(cpu_ticks "$pid")
	M_rss=$(peak_rss_kib "$pid")

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

declare -A RESULT # RESULT[name,metric,round]
METRICS=(rps p50 p99 rss cpu)
declare -A LABEL=(
	[rps]="requests/s"
	[p50]="p50 latency (ms)"
	[p99]="p99 latency (ms)"
	[rss]="peak RSS (MiB)"
	[cpu]="CPU-s per 100k req"
)

record() {
	local name=$1 round=$2
	RESULT[$name,rps,$round]=$M_rps
	RESULT[$name,p50,$round]=$M_p50
	RESULT[$name,p99,$round]=$M_p99
	RESULT[$name,rss,$round]=$M_rss
	RESULT[$name,cpu,$round]=$M_cpu
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
	done | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

print_table() {
	local title=$1 round=$2 m plain gate
	echo
	echo "$title"
	printf '%-22s %14s %14s %10s\n' "metric" "plain proxy" "stepgate" "ratio"
	for m in "${METRICS[@]}"; do
		plain=$(value plain "$m" "$round")
		gate=$(value stepgate "$m" "$round")
		printf '%-22s %14s %14s %10s\n' "${LABEL[$m]}" "$plain" "$gate" \
			"$(awk -v a="$gate" -v b="$plain" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "n/a" }')"
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
for p in "$UP_PORT" "$PLAIN_PORT" "$IDP_PORT" "$GATE_PORT" "$ADMIN_PORT"; do
	if port_busy "$p"; then
		die "port $p on 127.0.0.1 is busy (ports $PORT_BASE-$ADMIN_PORT are needed); stop what listens there or set BENCH_PORT_BASE"
	fi
done
UP_URL="http://127.0.0.1:$UP_PORT"
PLAIN_URL="http://127.0.0.1:$PLAIN_PORT"
ISSUER="http://127.0.0.1:$IDP_PORT"
GATE_URL="http://127.0.0.1:$GATE_PORT"
ADMIN_URL="http://127.0.0.1:$ADMIN_PORT"

echo "bench: building stepgate and loadtool" >&2
(cd "$ROOT" && CGO_ENABLED=0 go build -tags nodemo -o "$WORK/stepgate" . && CGO_ENABLED=0 go build -o "$WORK/loadtool" ./bench/loadtool) ||
	die "build failed"

cat >"$WORK/routes.yaml" <<EOF
# Generated by bench/run.sh.
listen: "127.0.0.1:$GATE_PORT"
admin_listen: "127.0.0.1:$ADMIN_PORT"
upstream: "$UP_URL"
public_url: "$GATE_URL"
insecure_allow_http: true
oidc:
  issuer: "$ISSUER"
  client_id: stepgate
  client_secret: "$CLIENT_SECRET"
session:
  secrets: ["$SESSION_SECRET"]
  lifetime: 1h
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
EOF
"$WORK/stepgate" check -config "$WORK/routes.yaml" >"$OUT/check.log" 2>&1 || {
	cat "$OUT/check.log" >&2
	die "stepgate check rejected the generated configuration"
}

cat >"$WORK/report.lua" <<'EOF'
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
EOF

start upstream "$WORK/loadtool" upstream -addr "127.0.0.1:$UP_PORT"
UP_PID=$STARTED
wait_ready upstream "$UP_PID" "$UP_URL/"

start idp "$WORK/loadtool" idp -addr "127.0.0.1:$IDP_PORT" -redirect "$GATE_URL/.stepgate/callback" -client-secret "$CLIENT_SECRET"
IDP_PID=$STARTED
wait_ready idp "$IDP_PID" "$ISSUER/.well-known/openid-configuration"

start plain "$WORK/loadtool" plainproxy -addr "127.0.0.1:$PLAIN_PORT" -upstream "$UP_URL"
PLAIN_PID=$STARTED
wait_ready plain "$PLAIN_PID" "$PLAIN_URL/"

start stepgate "$WORK/stepgate" serve -config "$WORK/routes.yaml"
GATE_PID=$STARTED
wait_ready stepgate "$GATE_PID" "$ADMIN_URL/readyz"

COOKIE=$("$WORK/loadtool" cookie -secret "$SESSION_SECRET" -lifetime 1h -issuer "$ISSUER" -client-id stepgate) ||
	die "could not mint a session cookie"

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
expect "stepgate with session" 200 ok "$GATE_URL$TARGET_PATH" -H "Cookie: $COOKIE" -H "Accept: application/json"
expect "stepgate without session (API)" "401|302" "" "$GATE_URL$TARGET_PATH" -H "Accept: application/json"
expect "stepgate without session (browser)" "401|302" "" "$GATE_URL$TARGET_PATH" -H "Accept: text/html"
# One character changed in the middle of the sealed value: the MAC must fail.
mid=$((${#COOKIE} / 2))
swap=A
[[ ${COOKIE:mid:1} == A ]] && swap=B
expect "stepgate with a tampered cookie" "401|302" "" "$GATE_URL$TARGET_PATH" -H "Cookie: ${COOKIE:0:mid}$swap${COOKIE:mid+1}" -H "Accept: application/json"
echo "bench: pre-check passed: the cookie reaches the upstream through stepgate; requests without it do not" >&2

# --- runs --------------------------------------------------------------------

for ((round = 1; round <= ROUNDS; round++)); do
	if ((round % 2)); then
		order=(plain stepgate)
	else
		order=(stepgate plain)
	fi
	for name in "${order[@]}"; do
		if [[ $name == plain ]]; then
			measure plain "$PLAIN_PID" "$PLAIN_URL$TARGET_PATH" "$round"
		else
			measure stepgate "$GATE_PID" "$GATE_URL$TARGET_PATH" "$round"
		fi
		record "$name" "$round"
	done
done

{
	echo "machine: $(nproc) CPUs, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), $(uname -sr)"
	echo "toolchain: $(go version | awk '{ print $3 }'); $(wrk -v 2>&1 | awk 'NR == 1 { print $1, $2 }' || true)"
	echo "load: wrk -t$THREADS -c$CONNECTIONS -d$DURATION (warm-up $WARMUP) GET $TARGET_PATH with a multi-factor session cookie; $ROUNDS round(s)"
	echo "note: wrk, the upstream and the proxy share the CPUs; CPU-s per 100k requests is the stable comparison"
	for ((round = 1; round <= ROUNDS; round++)); do
		print_table "round $round (stepgate/plain ratio)" "$round"
	done
	if ((ROUNDS > 1)); then
		print_table "median of $ROUNDS rounds (stepgate/plain ratio)" median
	fi
} | tee "$OUT/results.txt"
echo >&2
echo "bench: logs and wrk output in $OUT" >&2
