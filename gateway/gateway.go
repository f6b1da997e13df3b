// Package gateway wires a validated configuration into a running stepgate:
// the session store, the proxy handler, the OpenID provider client and the
// public and admin servers. The command, the demo and the end-to-end tests
// all build a gateway this one way.
package gateway

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stepgate/stepgate/config"
	"github.com/stepgate/stepgate/oidc"
	"github.com/stepgate/stepgate/proxy"
	"github.com/stepgate/stepgate/session"
	"github.com/stepgate/stepgate/store"
)

// Options are what a Gateway needs besides its configuration. The zero value
// logs to slog.Default, uses the real clock and listens on the configured
// addresses.
type Options struct {
	Logger *slog.Logger
	Now    func() time.Time // the gateway's clock; tests move it

	// Listener and AdminListener, when set, are served instead of listening
	// on the configuration's listen and admin_listen. Run closes them.
	Listener, AdminListener net.Listener

	// DrainTimeout bounds how long Run waits for in-flight requests once its
	// context ends; zero means 30 seconds.
	DrainTimeout time.Duration
}

// Gateway is one stepgate: a public and an admin server around a proxy
// handler. Build it with New, start it with Run.
type Gateway struct {
	handler *proxy.Handler
	admin   http.Handler
	public  *http.Server
	adminS  *http.Server
	drain   *drainer
	oidc    oidc.Config
	log     *slog.Logger
	opt     Options
	shared  store.Store

	boot     *config.Config // what New was given: Reload names what differs and needs a restart
	reloadMu sync.Mutex     // one Reload at a time, so the last file read is the one in force

	closeOnce sync.Once
	closeErr  error
}

// openStore opens session.store: this process's memory, or the Redis that
// replicas share. An unreachable Redis at start is an error: a replica
// that cannot see revocations must not serve (its orchestrator restarts it
// until Redis answers).
func openStore(url, prefix string, log *slog.Logger) (store.Store, error) {
	if url == "" {
		return store.NewMemory(), nil
	}
	// go-redis logs reconnects on its own, process-wide; its lines go to the
	// gateway's log at WARN, never with the URL's password.
	redis.SetLogger(redisLogger{log})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := store.NewRedis(ctx, url, store.RedisOptions{Prefix: prefix})
	if err != nil {
		return nil, fmt.Errorf("gateway: session store: %w", err)
	}
	return s, nil
}

// storePrefix namespaces a deployment's keys in a shared Redis by its
// issuer and client_id, the pair its cookies are bound to: two deployments
// on one Redis never see each other's revocations, single-use records or
// held transactions (a subject's "log out everywhere" in staging must not
// end the same subject's sessions in production).
func storePrefix(cfg *config.Config) string {
	sum := sha256.Sum256([]byte(strconv.Itoa(len(cfg.OIDC.Issuer)) + ":" + cfg.OIDC.Issuer + cfg.OIDC.ClientID))
	return "stepgate:" + hex.EncodeToString(sum[:6]) + ":"
}

// redisLogger routes go-redis's internal log lines into slog.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(_ context.Context, format string, v ...any) {
	l.log.Warn("redis client", "msg", fmt.Sprintf(format, v...))
}

// New wires cfg. It does not reach the identity provider: Run discovers it
// in the background, so a slow provider delays readiness, not start-up; or
// call Connect first when the provider is known to be up.
func New(cfg *config.Config, opt Options) (*Gateway, error) {
	if cfg == nil || cfg.Table == nil {
		return nil, errors.New("gateway: want a configuration from config.Load or config.Parse")
	}
	if len(cfg.Unset) > 0 {
		return nil, fmt.Errorf("gateway: the configuration has %d unset variables read as placeholders; it can be checked, never served", len(cfg.Unset))
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.DrainTimeout <= 0 {
		opt.DrainTimeout = 30 * time.Second
	}
	shared, err := openStore(cfg.Session.Store, storePrefix(cfg), opt.Logger)
	if err != nil {
		return nil, err
	}
	sessions, err := session.New(session.Config{
		Secrets:  cfg.Session.Secrets,
		Lifetime: cfg.Session.Lifetime,
		Secure:   cfg.PublicURL.Scheme == "https",
		Issuer:   cfg.OIDC.Issuer,
		ClientID: cfg.OIDC.ClientID,
	})
	if err != nil {
		shared.Close()
		return nil, err
	}
	h, err := proxy.New(proxy.Config{
		Table:           cfg.Table,
		PathOptions:     cfg.PathOptions(),
		Levels:          cfg.Levels,
		Sessions:        sessions,
		Upstream:        cfg.Upstream,
		PublicURL:       cfg.PublicURL,
		IdentityHeaders: cfg.IdentityHeaders,
		TrustedProxies:  cfg.TrustedProxies,
		Store:           shared,
		StoreGrace:      cfg.Session.StoreGrace,
		AdminToken:      cfg.Admin.Token,
		API:             apiConfig(cfg.API),
		Logger:          opt.Logger,
		Now:             opt.Now,
	})
	if err != nil {
		shared.Close()
		return nil, err
	}
	g := &Gateway{
		handler: h,
		admin:   proxy.Admin(h),
		oidc: oidc.Config{
			Issuer:           cfg.OIDC.Issuer,
			ClientID:         cfg.OIDC.ClientID,
			ClientSecret:     cfg.OIDC.ClientSecret,
			RedirectURL:      cfg.PublicURL.String() + "/.stepgate/callback",
			Scopes:           cfg.OIDC.Scopes,
			PAR:              cfg.OIDC.PAR,
			IntrospectionURL: introspectionURL(cfg.API),
		},
		log:    opt.Logger,
		opt:    opt,
		shared: shared,
		boot:   cfg,
	}
	g.drain = newDrainer()
	g.public = NewServer(cfg.Listen, g.drain.wrap(h))
	g.public.ConnState = g.drain.track
	g.adminS = NewServer(cfg.AdminListen, g.drain.readyz(g.admin))
	return g, nil
}

// apiConfig is routes.yaml's api section as the proxy takes it.
func apiConfig(a *config.API) *proxy.APIConfig {
	if a == nil {
		return nil
	}
	return &proxy.APIConfig{
		Audience:         a.Audience,
		Tokens:           a.Tokens,
		DPoP:             a.DPoP,
		RouteDPoP:        a.RouteDPoP,
		CacheTTL:         a.CacheTTL,
		IntrospectionTTL: a.IntrospectionTTL,
		CacheSize:        a.CacheSize,
	}
}

// NewServer returns an http.Server with every limit stepgate serves with,
// set deliberately. There is no WriteTimeout or ReadTimeout: downloads,
// uploads and websockets may be long, and the upstream transport bounds the
// wait for its answer. Request bodies get per-request read deadlines from
// the proxy instead (an idle limit when forwarded, a short bounded read
// before the gateway's own answers).
func NewServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10, // a cookie bomb gets 431, never a pass-through
	}
}

// Handler is the public listener's handler.
func (g *Gateway) Handler() http.Handler { return g.handler }

// AdminHandler serves /healthz, /readyz and /metrics.
func (g *Gateway) AdminHandler() http.Handler { return g.admin }

// Ready reports whether the identity provider has been discovered, so that
// logins and step-ups can start.
func (g *Gateway) Ready() bool { return g.handler.Ready() }

// Connect discovers the identity provider once, now. It is for callers that
// start the provider themselves (the demo, tests); Run retries on its own.
func (g *Gateway) Connect(ctx context.Context) error {
	c, err := oidc.New(ctx, g.oidc)
	if err != nil {
		return err
	}
	g.handler.SetOIDC(c)
	return nil
}

// Run serves until ctx ends, then drains in-flight requests for at most
// Options.DrainTimeout: the public listener stops accepting, every answer
// from then on carries Connection: close, /readyz answers 503, and the
// servers shut down once no client is mid-request (see drainer). Unless Connect succeeded already, it discovers the
// identity provider in the background, retrying with backoff; until then
// /readyz says not ready and logins answer 503. It returns nil after a clean
// drain, or the error that stopped a server.
func (g *Gateway) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 3)
	if !g.Ready() {
		go func() {
			if err := g.discover(ctx); err != nil {
				errc <- err
			}
		}()
	}
	lns := []net.Listener{g.opt.Listener, g.opt.AdminListener}
	servers := []*http.Server{g.public, g.adminS}
	for i, s := range servers {
		if lns[i] != nil {
			continue
		}
		ln, err := net.Listen("tcp", s.Addr)
		if err != nil {
			for _, l := range lns[:i] {
				l.Close()
			}
			return fmt.Errorf("gateway: %w", err)
		}
		lns[i] = ln
	}
	public := newStopListener(lns[0])
	lns[0] = public
	for i, s := range servers {
		go func() {
			g.log.Info("listening", "addr", lns[i].Addr().String())
			if err := s.Serve(lns[i]); !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
	}
	var failed error
	select {
	case failed = <-errc:
		g.log.Error("server failed", "err", failed)
	case <-ctx.Done():
		g.log.Info("shutting down; draining in-flight requests")
	}
	shutCtx, done := context.WithTimeout(context.Background(), g.opt.DrainTimeout)
	defer done()
	g.drain.drain(shutCtx, public)
	for _, s := range servers {
		if err := s.Shutdown(shutCtx); err != nil {
			g.log.Error("shutdown", "err", err)
			s.Close()
			failed = cmp.Or(failed, err)
		}
	}
	g.Close()
	return failed
}

// Close releases what New opened: the follower of the shared store and the
// store itself. Run calls it after draining; call it yourself when a
// Gateway is built and never run.
func (g *Gateway) Close() error {
	g.closeOnce.Do(func() {
		g.handler.Close()
		g.closeErr = g.shared.Close()
	})
	return g.closeErr
}

// discover dials the identity provider until it answers or ctx ends. A
// provider that answers but cannot serve the configuration (oidc.
// ErrIncompatible) is an error: the gateway stops rather than run without
// ever being able to sign anyone in.
func (g *Gateway) discover(ctx context.Context) error {
	c, err := oidc.Dial(ctx, g.oidc, func(err error, wait time.Duration) {
		g.log.Warn("identity provider discovery failed; retrying", "issuer", g.oidc.Issuer, "err", err, "retry_in", wait.String())
	})
	if errors.Is(err, oidc.ErrIncompatible) {
		g.log.Error("identity provider cannot serve this configuration", "issuer", g.oidc.Issuer, "err", err)
		return err
	}
	if err != nil {
		return nil // ctx ended
	}
	g.handler.SetOIDC(c)
	g.log.Info("identity provider ready", "issuer", g.oidc.Issuer)
	return nil
}

// introspectionURL is api.introspection_url, or "" for discovery's.
func introspectionURL(a *config.API) string {
	if a == nil {
		return ""
	}
	return a.IntrospectionURL
}
