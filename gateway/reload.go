package gateway

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/stepgate/stepgate/config"
	"github.com/stepgate/stepgate/proxy"
)

// reloadQuiet is how long the configuration file must stay unchanged
// before a change is read: an editor's save or a ConfigMap update is
// several events (truncate, write, rename, chmod), and the file is only
// complete after the last.
const reloadQuiet = 250 * time.Millisecond

// Reload reads the file at path again, validated exactly as at start-up,
// and applies what a running gateway can change: the routes, the levels
// and the path switches. New requests are decided on the new file at once;
// requests being served finish on the one they started with.
//
// An invalid file changes nothing: the error (every problem, each with its
// position) is logged and returned, and counted in
// stepgate_config_reload_total{result="error"}. A valid file whose other
// settings (listen addresses, the provider, secrets...) differ from those
// the gateway started with is applied all the same, and a warning names the
// settings that need a restart.
func (g *Gateway) Reload(path string) error {
	g.reloadMu.Lock()
	defer g.reloadMu.Unlock()
	cfg, err := config.Load(path)
	if err == nil {
		rt := proxy.Routes{Table: cfg.Table, PathOptions: cfg.PathOptions(), Levels: cfg.Levels}
		if cfg.API != nil {
			rt.DPoP = cfg.API.RouteDPoP
		}
		err = g.handler.SetRoutes(rt)
	}
	if err != nil {
		g.handler.CountReload(false)
		g.log.Error("config reload failed; the previous configuration keeps serving", "file", path, "err", err.Error())
		return err
	}
	g.handler.CountReload(true)
	for _, w := range config.Warnings(cfg) {
		g.log.Warn("config", "warning", w)
	}
	if names := restartNeeded(g.boot, cfg); len(names) > 0 {
		// Names only: the values may be secrets.
		g.log.Warn("restart needed for: "+strings.Join(names, ", "), "file", path)
	}
	g.log.Info("config reloaded", "file", path, "routes", len(cfg.Routes), "levels", len(cfg.Levels))
	return nil
}

// restartNeeded names the settings that differ between the configuration
// the gateway started with and cfg, of those it cannot change while it
// runs: what its listeners, its provider client, its session store and
// its header handling were built from.
func restartNeeded(was, cfg *config.Config) []string {
	var names []string
	check := func(name string, same bool) {
		if !same {
			names = append(names, name)
		}
	}
	check("listen", was.Listen == cfg.Listen)
	check("admin_listen", was.AdminListen == cfg.AdminListen)
	check("upstream", urlString(was.Upstream) == urlString(cfg.Upstream))
	check("public_url", urlString(was.PublicURL) == urlString(cfg.PublicURL))
	check("oidc.issuer", was.OIDC.Issuer == cfg.OIDC.Issuer)
	check("oidc.client_id", was.OIDC.ClientID == cfg.OIDC.ClientID)
	check("oidc.client_secret", was.OIDC.ClientSecret == cfg.OIDC.ClientSecret)
	check("oidc.scopes", slices.Equal(was.OIDC.Scopes, cfg.OIDC.Scopes))
	check("oidc.par", was.OIDC.PAR == cfg.OIDC.PAR)
	check("session.secrets", slices.EqualFunc(was.Session.Secrets, cfg.Session.Secrets, bytes.Equal))
	check("session.lifetime", was.Session.Lifetime == cfg.Session.Lifetime)
	check("session.store", was.Session.Store == cfg.Session.Store)
	check("session.store_grace", was.Session.StoreGrace == cfg.Session.StoreGrace)
	check("admin.token", was.Admin.Token == cfg.Admin.Token)
	check("trusted_proxies", slices.Equal(was.TrustedProxies, cfg.TrustedProxies))
	check("identity_headers", slices.Equal(was.IdentityHeaders, cfg.IdentityHeaders))
	// The token cache holds what was verified for the old audience and
	// modes; a new api section starts with a new cache. The routes' own
	// dpop settings are reloaded with the routes.
	check("api", reflect.DeepEqual(apiSettings(was.API), apiSettings(cfg.API)))
	return names
}

func urlString(u *url.URL) string {
	if u == nil {
		return ""
	}
	return u.String()
}

// WatchConfig reloads the file at path whenever it changes, until ctx
// ends. It returns once the watch is in place, or an error when the file
// cannot be watched (SIGHUP still reloads it then).
func (g *Gateway) WatchConfig(ctx context.Context, path string) error {
	return watchFile(ctx, path, reloadQuiet, g.log, func() { g.Reload(path) })
}

// watchFile calls changed, from one goroutine, once the file at path has
// changed and then stayed unchanged for quiet, until ctx ends. It returns
// once the watch is in place.
//
// It watches the file's directory, not the file: an editor saves by
// writing a new file and renaming it over the old one, and a Kubernetes
// ConfigMap volume swaps a symbolic link, ..data, that the file's own link
// points through; a watch on the file itself would follow the old inode
// and see neither. Events for other names in the directory are ignored.
func watchFile(ctx context.Context, path string, quiet time.Duration, log *slog.Logger, changed func()) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("gateway: watching %s: %w", path, err)
	}
	dir, name := filepath.Split(filepath.Clean(path))
	if dir == "" {
		dir = "."
	}
	if err := w.Add(dir); err != nil {
		w.Close()
		return fmt.Errorf("gateway: watching %s: %w", path, err)
	}
	go func() {
		defer w.Close()
		settle := time.NewTimer(quiet)
		settle.Stop()
		for {
			select {
			case <-ctx.Done():
				settle.Stop()
				return
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				// A change of mode alone changes no content.
				if base := filepath.Base(ev.Name); (base == name || base == "..data") && ev.Op != fsnotify.Chmod {
					settle.Reset(quiet)
				}
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				// An overflow lost events, perhaps the file's: read it again.
				log.Warn("watching the configuration file", "file", path, "err", err)
				settle.Reset(quiet)
			case <-settle.C:
				changed()
			}
		}
	}()
	return nil
}

// apiSettings is a without what reloads with the routes.
func apiSettings(a *config.API) *config.API {
	if a == nil {
		return nil
	}
	c := *a
	c.RouteDPoP = nil
	return &c
}
