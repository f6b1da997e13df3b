#!/usr/bin/env bash
# Checks deploy/: the Go test that parses every Kubernetes YAML file, then
# helm lint and helm template of the chart in both modes. helm is installed
# into $HOME/.cache/stepgate-tools (about 5 minutes the first time), never
# into the project's go.mod.
set -euo pipefail
cd "$(dirname "$0")/.."

tools="${STEPGATE_TOOLS:-${HOME:-/tmp}/.cache/stepgate-tools}"
helm="$tools/helm"
if [ ! -x "$helm" ]; then
  echo "== installing helm v3.22.0 into $tools"
  mkdir -p "$tools"
  (cd "$tools" && GOBIN="$tools" GOFLAGS=-mod=mod go install helm.sh/helm/v3/cmd/helm@v3.22.0)
fi

echo "== go test ./deploy"
go test -count=1 ./deploy

chart=deploy/helm/stepgate
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
for mode in sidecar forwardAuth; do
  set -- --set mode="$mode"
  if [ "$mode" = forwardAuth ]; then
    set -- "$@" --set 'config.trustedProxies={10.244.0.0/16}' --set autoscaling.enabled=true
  fi
  echo "== helm lint ($mode)"
  "$helm" lint --strict "$chart" "$@"
  echo "== helm template ($mode)"
  "$helm" template check "$chart" "$@" > "$out/$mode.yaml"
  STEPGATE_RENDERED="$out/$mode.yaml" go test -count=1 -run TestRenderedChart ./deploy
done
echo "deploy/: ok"
