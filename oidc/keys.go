package oidc

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
)

// minKeyRefresh is the shortest time between two fetches of the provider's
// JWKS. A token whose signature no known key verifies may mean the provider
// rotated its keys, so the keys are fetched again, but at most this often:
// anyone can post a logout token, and without the bound each bad one would
// make the gateway fetch the provider's keys (go-oidc's RemoteKeySet
// refetches on every failure).
const minKeyRefresh = 10 * time.Second

// maxJWKS bounds the provider's key set document.
const maxJWKS = 1 << 20

// keySet verifies signatures with the provider's keys, fetching them when
// first needed and again, at most every minKeyRefresh, when a signature
// does not verify with the keys it has.
type keySet struct {
	url string
	hc  *http.Client

	mu      sync.Mutex // held while fetching, so one fetch serves all waiters
	keys    gooidc.StaticKeySet
	fetched time.Time
	err     error // of the last fetch; nil when it succeeded
}

func newKeySet(url string, hc *http.Client) *keySet { return &keySet{url: url, hc: hc} }

// VerifySignature implements go-oidc's KeySet.
func (k *keySet) VerifySignature(ctx context.Context, jwt string) ([]byte, error) {
	k.mu.Lock()
	keys, fetched := k.keys, k.fetched
	k.mu.Unlock()
	if len(keys.PublicKeys) > 0 {
		if p, err := keys.VerifySignature(ctx, jwt); err == nil {
			return p, nil
		}
	}
	if keys, err := k.refresh(ctx, fetched); err != nil {
		noteFetch(ctx, err)
		return nil, err
	} else if len(keys.PublicKeys) > 0 {
		return keys.VerifySignature(ctx, jwt)
	}
	return nil, errors.New("oidc: the provider's key set holds no signing keys")
}

// refresh fetches the keys unless they were fetched after seen or less than
// minKeyRefresh ago, and returns the keys to try.
func (k *keySet) refresh(ctx context.Context, seen time.Time) (gooidc.StaticKeySet, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.fetched.After(seen) || (!k.fetched.IsZero() && time.Since(k.fetched) < minKeyRefresh) {
		if len(k.keys.PublicKeys) == 0 {
			if k.err != nil {
				// No keys because the last fetch failed: say why, so an
				// unreachable provider is not taken for a bad token.
				return k.keys, k.err
			}
			return k.keys, errors.New("oidc: no key verifies the signature, and the provider's keys were fetched moments ago")
		}
		return k.keys, nil
	}
	keys, err := k.fetch(ctx)
	k.fetched = time.Now() // a failed fetch waits its turn too
	k.err = err
	if err != nil {
		return k.keys, err
	}
	k.keys = keys
	return keys, nil
}

func (k *keySet) fetch(ctx context.Context) (gooidc.StaticKeySet, error) {
	// A fetch cut by this bound is the provider's failure; one cut because
	// ctx ended is not (see unreachable), hence two contexts.
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(fctx, http.MethodGet, k.url, nil)
	if err != nil {
		return gooidc.StaticKeySet{}, fmt.Errorf("oidc: jwks_uri %q: %w", k.url, err)
	}
	resp, err := k.hc.Do(req)
	if err != nil {
		err = fmt.Errorf("oidc: fetching keys: %w", err)
		if unreachable(ctx, err) {
			return gooidc.StaticKeySet{}, &unavailable{err}
		}
		return gooidc.StaticKeySet{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		err := fmt.Errorf("oidc: fetching keys from %q: status %d; want 200", k.url, resp.StatusCode)
		if serverError(resp.StatusCode) {
			return gooidc.StaticKeySet{}, &unavailable{err}
		}
		return gooidc.StaticKeySet{}, err
	}
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxJWKS)).Decode(&set); err != nil {
		return gooidc.StaticKeySet{}, fmt.Errorf("oidc: keys from %q: %w", k.url, err)
	}
	var keys gooidc.StaticKeySet
	for _, key := range set.Keys {
		if key.Use != "" && key.Use != "sig" || !key.Valid() || !key.IsPublic() {
			continue
		}
		keys.PublicKeys = append(keys.PublicKeys, crypto.PublicKey(key.Key))
	}
	return keys, nil
}
