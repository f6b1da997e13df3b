#!/usr/bin/env bash
# Runs stepgate's whole test suite: formatting, vet, every package's tests with
# the race detector, and a bounded fuzzing run of the canonicalizer.
# Usage: ./test.sh            (FUZZTIME=20s by default)
set -euo pipefail
cd "$(dirname "$0")"

fuzztime="${FUZZTIME:-20s}"

# The browser tests need Chromium, the forward-auth tests nginx and Caddy, the
# store tests redis-server (each test starts its own) and the
# shutdown-under-load test wrk: real parts, not mocks.
# Install them from Debian when missing and we may; the tests themselves fail
# (never skip) under CI=true when a part is absent.
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || need+=(redis-server)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v caddy >/dev/null 2>&1 || [ -x /usr/bin/caddy ] || need+=(caddy)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "note: ${need[*]} missing and cannot be installed here; the tests that need them will skip (or fail under CI=true)"
  fi
fi

echo "== no large files tracked"
# Build outputs never belong in the repository; 1 MiB is far above any
# source file, screenshot or golden file here.
large=$(git ls-files -z 2>/dev/null | xargs -0 -r stat -c '%s %n' 2>/dev/null | awk '$1 > 1048576 {print $2 " (" $1 " bytes)"}')
if [ -n "$large" ]; then
  echo "tracked files larger than 1 MiB:"; echo "$large"; exit 1
fi

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

echo "== go vet"
go vet ./...

echo "== go test -race"
go test -race -count=1 ./...

echo "== fuzz FuzzCanonical ($fuzztime)"
go test ./policy -run '^$' -fuzz '^FuzzCanonical$' -fuzztime "$fuzztime"

echo "== fuzz FuzzForward ($fuzztime): what the upstream receives is what was decided"
go test ./proxy -run '^$' -fuzz '^FuzzForward$' -fuzztime "$fuzztime"

echo "== fuzz the bearer-token parsers (10s each): Authorization, the WWW-Authenticate challenge, DPoP proofs"
go test ./proxy -run '^$' -fuzz '^FuzzCredentialOf$' -fuzztime 10s
go test ./proxy -run '^$' -fuzz '^FuzzChallenge$' -fuzztime 10s
go test ./dpop -run '^$' -fuzz '^FuzzVerify$' -fuzztime 10s

echo "== the container's binary: built as the Dockerfile builds it, started once"
bin="$(mktemp -d)"
trap 'rm -rf "$bin"' EXIT
CGO_ENABLED=0 go build -tags nodemo -trimpath -ldflags="-s -w" -o "$bin/stepgate" .
STEPGATE_CLIENT_ID=ci STEPGATE_CLIENT_SECRET=ci STEPGATE_SESSION_SECRET=ci-session-secret-0123456789abcdef \
  "$bin/stepgate" check -config routes.yaml
# serve: live on its admin listener, then a clean drain on SIGTERM. The
# issuer is unreachable on purpose: liveness must not wait for discovery.
cat > "$bin/routes.yaml" <<'YAML'
listen: "127.0.0.1:18480"
admin_listen: "127.0.0.1:18481"
upstream: "http://127.0.0.1:18482"
public_url: "http://127.0.0.1:18480"
insecure_allow_http: true
oidc: {issuer: "http://127.0.0.1:18483", client_id: ci, client_secret: ci}
session: {secrets: ["ci-session-secret-0123456789abcdef"]}
YAML
"$bin/stepgate" serve -config "$bin/routes.yaml" 2>"$bin/serve.log" &
pid=$!
live=""
for _ in $(seq 50); do
  if curl -fsS http://127.0.0.1:18481/healthz >/dev/null 2>&1; then live=yes; break; fi
  sleep 0.1
done
kill -TERM "$pid"
if ! wait "$pid" || [ -z "$live" ]; then
  echo "the static binary did not serve /healthz and stop cleanly:"; cat "$bin/serve.log"; exit 1
fi
echo "static binary: served /healthz, drained on SIGTERM"
if "$bin/stepgate" demo 2>/dev/null; then
  echo "the production binary (-tags nodemo) started the demo"; exit 1
fi

echo "== deploy/ (manifests, helm lint, helm template)"
./deploy/check.sh
