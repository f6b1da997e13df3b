#!/usr/bin/env bash
# Runs stepgate's whole test suite: formatting, vet, every package's tests with
# the race detector, and a bounded fuzzing run of the canonicalizer.
# Usage: ./test.sh            (FUZZTIME=20s by default)
set -euo pipefail
cd "$(dirname "$0")"

fuzztime="${FUZZTIME:-20s}"

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
