package oidc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
)

// ErrUnavailable marks a failure to reach the provider at all: the
// connection was refused, reset or timed out, or the provider answered
// 5xx. Nothing was wrong with the request, and the same request may
// succeed later, so callers answer 503 with Retry-After instead of
// blaming the user or sending a browser to a provider that is down.
var ErrUnavailable = errors.New("oidc: the provider cannot be reached")

// unavailable wraps the detailed error of a call that could not reach the
// provider; errors.Is(err, ErrUnavailable) reports it, and the message
// stays the detailed one.
type unavailable struct{ err error }

func (e *unavailable) Error() string        { return e.err.Error() }
func (e *unavailable) Unwrap() error        { return e.err }
func (e *unavailable) Is(target error) bool { return target == ErrUnavailable }

// unreachable reports whether err, from a request to the provider made on
// ctx, means the provider could not be reached. A request whose own context
// ended (the browser went away, the caller gave up) says nothing about the
// provider, and neither does a parse error of an answer that arrived.
func unreachable(ctx context.Context, err error) bool {
	if err == nil || ctx.Err() != nil {
		return false
	}
	var ne net.Error
	return errors.As(err, &ne)
}

// serverError reports whether an HTTP status is the provider's failure
// rather than a judgement of the request.
func serverError(status int) bool { return status >= 500 }

// maxProbeBody bounds what Probe reads of the discovery document: enough to
// drain a normal one, so the connection is kept for the next probe.
const maxProbeBody = 256 << 10

// Probe asks the provider whether it is up: one GET of its discovery
// document, bounded by ctx. It is cheap for the provider (the document is
// static and usually cached) and is what a login needs first, so a gateway
// can run it in the background every few seconds and send no browser to a
// provider whose last answer was a failure. The error matches
// ErrUnavailable when the provider cannot be reached or answers anything
// other than 200, or does not answer before ctx's deadline; a ctx canceled
// (the gateway stopping) is no verdict on the provider.
func (c *Client) Probe(ctx context.Context) error {
	u := strings.TrimSuffix(c.issuer, "/") + "/.well-known/openid-configuration"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("oidc: probe: %w", err)
	}
	resp, err := c.httpClient.Do(req)
	if err != nil {
		err = fmt.Errorf("oidc: probe of %s: %w", u, err)
		if errors.Is(ctx.Err(), context.Canceled) {
			return err
		}
		return &unavailable{err}
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxProbeBody))
	if resp.StatusCode != http.StatusOK {
		return &unavailable{fmt.Errorf("oidc: probe of %s: status %d; want 200", u, resp.StatusCode)}
	}
	return nil
}

// fetchNote collects, for one Exchange, whether fetching the provider's
// keys failed because the provider could not be reached: go-oidc reports a
// key set's error to its caller as text only (%v), so the cause is passed
// beside it, through the context.
type fetchNote struct{ err error }

type fetchNoteKey struct{}

func withFetchNote(ctx context.Context) (context.Context, *fetchNote) {
	n := new(fetchNote)
	return context.WithValue(ctx, fetchNoteKey{}, n), n
}

// noteFetch records err, if it means the provider was unreachable, on the
// fetchNote ctx carries, if any.
func noteFetch(ctx context.Context, err error) {
	if n, ok := ctx.Value(fetchNoteKey{}).(*fetchNote); ok && errors.Is(err, ErrUnavailable) {
		n.err = err
	}
}
