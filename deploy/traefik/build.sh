#!/usr/bin/env bash
# Builds the Traefik that e2e/traefik_test.go runs, from the Go module proxy,
# into ~/.cache/stepgate/traefik. It is a tool of a throw-away module in a
# temporary directory, never part of stepgate's go.mod.
#
# Traefik cannot be built here exactly as released: `go install ...@version`
# refuses a module whose go.mod has replace directives, and the module proxy
# does not serve three things Traefik's build needs. Each is stood in for,
# here only, and none of them is on the path the tests exercise:
#   - github.com/traefik/traefik/dynamic/ext, a nested module of Traefik's
#     repository that its go.mod replaces with a local directory: two empty
#     structs stand in for the two types it embeds in the dynamic
#     configuration, so whatever options they add are unknown to this build;
#   - github.com/containous/go-http-auth, Traefik's fork of
#     github.com/abbot/go-http-auth (BasicAuth and DigestAuth middlewares):
#     the original, v0.4.0, is used, with the two functions the fork adds
#     written over its own code (CheckSecret, RequireAuthStale);
#   - the SDKs of about a dozen of lego's ACME DNS providers (Huawei, UCloud,
#     Yandex, Tencent, ...): lego's provider registry is replaced by one that
#     knows none, so only DNS-01 certificate challenges are missing.
# Usage: deploy/traefik/build.sh
# About 16 minutes from a cold build cache on 2 shared cores (too long for
# CI, so the Traefik suite is behind the build tag traefik), under a minute
# when the cache has it.
set -euo pipefail

version=v3.7.13
lego=v5.4.1
out="${HOME}/.cache/stepgate/traefik"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export GOFLAGS=-mod=mod
cd "$work"

# lego, whose registry is patched, comes from the module cache, downloaded
# through the proxy like everything else.
lego_dir=$(go mod download -json "github.com/go-acme/lego/v5@$lego" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -d "$lego_dir" ] || { echo "could not download lego $lego"; exit 1; }

mkdir ext
cat > ext/go.mod <<'EOF'
module github.com/traefik/traefik/dynamic/ext

go 1.24
EOF
cat > ext/ext.go <<'EOF'
// Package ext stands in for Traefik's nested module, which the module proxy
// does not serve.
package ext

type HTTP struct{}

type Router struct{}
EOF

abbot_dir=$(go mod download -json github.com/abbot/go-http-auth@v0.4.0 | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -d "$abbot_dir" ] || { echo "could not download go-http-auth v0.4.0"; exit 1; }
cp -r "$abbot_dir" goauth
chmod -R u+w goauth
[ -f goauth/go.mod ] || printf 'module github.com/abbot/go-http-auth\n\ngo 1.12\n' > goauth/go.mod
cat > goauth/traefik_fork.go <<'EOF'
package auth

import (
	"fmt"
	"net/http"
	"strings"
	"time"
)

// CheckSecret reports whether password matches secret, hashed in any form
// BasicAuth.CheckAuth knows (what Traefik's fork exports).
func CheckSecret(password, secret string) bool {
	compare := compareFuncs[0].compare
	for _, cmp := range compareFuncs[1:] {
		if strings.HasPrefix(secret, cmp.prefix) {
			compare = cmp.compare
			break
		}
	}
	return compare([]byte(secret), []byte(password)) == nil
}

// RequireAuthStale is RequireAuth with stale=true in the challenge (what
// Traefik's fork exports).
func (a *DigestAuth) RequireAuthStale(w http.ResponseWriter, r *http.Request) {
	if len(a.clients) > a.ClientCacheSize+a.ClientCacheTolerance {
		a.Purge(a.ClientCacheTolerance * 2)
	}
	nonce := RandomKey()
	a.clients[nonce] = &digest_client{nc: 0, last_seen: time.Now().UnixNano()}
	w.Header().Set(contentType, a.Headers.V().UnauthContentType)
	w.Header().Set(a.Headers.V().Authenticate,
		fmt.Sprintf(`Digest realm="%s", nonce="%s", opaque="%s", algorithm="MD5", qop="auth", stale=true`,
			a.Realm, nonce, a.Opaque))
	w.WriteHeader(a.Headers.V().UnauthCode)
	w.Write([]byte(a.Headers.V().UnauthResponse))
}
EOF

cp -r "$lego_dir" lego
chmod -R u+w lego
cat > lego/providers/dns/zz_gen_dns_providers.go <<'EOF'
package dns

import (
	"errors"

	"github.com/go-acme/lego/v5/challenge"
)

// NewDNSChallengeProviderByName knows no provider in this build: their SDKs
// are not served by the module proxy.
func NewDNSChallengeProviderByName(name string) (challenge.Provider, error) {
	return nil, errors.New("no DNS challenge provider is built into this Traefik")
}
EOF

cat > go.mod <<EOF
module traefikbuild

go 1.26

require github.com/traefik/traefik/v3 $version

replace (
	github.com/traefik/traefik/dynamic/ext => ./ext
	github.com/go-acme/lego/v5 => ./lego
	github.com/abbot/go-http-auth => ./goauth
	github.com/gorilla/mux => github.com/containous/mux v0.0.0-20250523120546-41b6ec3aed59
)
EOF
cat > tools.go <<'EOF'
//go:build tools

package tools

import _ "github.com/traefik/traefik/v3/cmd/traefik"
EOF
nice -n 19 go mod tidy
mkdir -p "$(dirname "$out")"
nice -n 19 go build -o "$out.tmp" github.com/traefik/traefik/v3/cmd/traefik
mv "$out.tmp" "$out"
"$out" version
