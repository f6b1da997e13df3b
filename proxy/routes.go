package proxy

import (
	"context"
	"errors"
	"net/http"

	"github.com/stepgate/stepgate/policy"
)

// Routes is what a reload of routes.yaml may change while the gateway
// serves: the route table, the path canonicalization switches and the
// levels rules and flows name. Everything else in Config is fixed for the
// Handler's life.
type Routes struct {
	Table       *policy.Table
	PathOptions policy.PathOptions
	Levels      []*policy.Level
	// DPoP holds, by rule name, the rules that set their own api.dpop.
	DPoP map[string]string
}

// routes is one immutable generation of Routes. A request takes the
// current generation once, when it starts, and reads only that one, so it
// never canonicalizes by one file and matches by another, and a request in
// flight finishes on the rules it started with.
type routes struct {
	table   *policy.Table
	pathOpt policy.PathOptions
	levels  map[string]*policy.Level
	dpop    map[string]string
}

func newRoutes(rt Routes) (*routes, error) {
	if rt.Table == nil {
		return nil, errors.New("proxy: Routes.Table is required")
	}
	g := &routes{table: rt.Table, pathOpt: rt.PathOptions, levels: make(map[string]*policy.Level, len(rt.Levels)), dpop: rt.DPoP}
	for _, l := range rt.Levels {
		g.levels[l.Name] = l
	}
	return g, nil
}

// SetRoutes replaces the routes new requests are decided on. Requests being
// served keep the routes they started with. A flow that started before the
// change and names what it removed (a pending step-up for a level no longer
// defined, a held transaction whose route is gone) fails closed when it
// comes back.
func (h *Handler) SetRoutes(rt Routes) error {
	g, err := newRoutes(rt)
	if err != nil {
		return err
	}
	h.routes.Store(g)
	return nil
}

// routesKey carries a request's generation of routes in its context.
type routesKey struct{}

// withRoutes pins the current routes to r for the rest of its life.
func (h *Handler) withRoutes(r *http.Request) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), routesKey{}, h.routes.Load()))
}

// routesOf returns the routes r was pinned to when it started. A request
// that did not come through ServeHTTP gets the current ones.
func (h *Handler) routesOf(r *http.Request) *routes {
	if g, ok := r.Context().Value(routesKey{}).(*routes); ok {
		return g
	}
	return h.routes.Load()
}
