package oidc

// TEMPORARY: replaced by the real verifier at merge.

import (
	"context"
	"errors"
	"time"

	"github.com/stepgate/stepgate/policy"
)

type AccessToken struct {
	Facts    policy.Facts
	SID      string
	ClientID string
	Scopes   []string
	JKT      string
	ID       string
	IssuedAt time.Time
	Expires  time.Time
}

var (
	ErrInvalidToken             = errors.New("oidc: invalid access token")
	ErrIntrospectionUnavailable = errors.New("oidc: introspection unavailable")
)

func (c *Client) VerifyAccessToken(ctx context.Context, raw, audience string) (*AccessToken, error) {
	return nil, ErrInvalidToken
}
func (c *Client) Introspect(ctx context.Context, raw, audience string) (*AccessToken, error) {
	return nil, ErrInvalidToken
}
