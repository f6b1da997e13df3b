package gateway

import (
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/stepgate/stepgate/config"
)

// Every setting in config.Config is either applied by Reload or named by
// restartNeeded when it changes: a field added to the configuration later
// fails here until someone decides which it is.
func TestRestartNeededCoversEveryField(t *testing.T) {
	applied := []string{
		"Levels", "Routes", "Default", "Table", "StripPathParams", "CaseInsensitivePaths", // the routes
		"File",              // where it was read from
		"InsecureAllowHTTP", // only what the file may say; public_url's scheme decides cookies
		"Unset",             // always empty in a file that is served
	}
	restart := map[string]string{
		"Listen": "listen", "AdminListen": "admin_listen", "Upstream": "upstream", "PublicURL": "public_url",
		"OIDC.Issuer": "oidc.issuer", "OIDC.ClientID": "oidc.client_id", "OIDC.ClientSecret": "oidc.client_secret",
		"OIDC.Scopes": "oidc.scopes", "OIDC.PAR": "oidc.par",
		"Session.Secrets": "session.secrets", "Session.Lifetime": "session.lifetime",
		"Session.Store": "session.store", "Session.StoreGrace": "session.store_grace",
		"Admin.Token":    "admin.token",
		"TrustedProxies": "trusted_proxies", "IdentityHeaders": "identity_headers",
		"API": "api",
	}
	var fields []string
	var walk func(prefix string, typ reflect.Type)
	walk = func(prefix string, typ reflect.Type) {
		for f := range typ.Fields() {
			if !f.IsExported() {
				continue
			}
			if f.Type.Kind() == reflect.Struct && f.Type.PkgPath() == reflect.TypeFor[config.Config]().PkgPath() {
				walk(prefix+f.Name+".", f.Type)
				continue
			}
			fields = append(fields, prefix+f.Name)
		}
	}
	walk("", reflect.TypeFor[config.Config]())
	for _, f := range fields {
		if _, ok := restart[f]; !ok && !slices.Contains(applied, f) {
			t.Errorf("config.Config.%s is neither applied by Reload nor named by restartNeeded; decide which", f)
		}
	}
	for field, name := range restart {
		var was, now config.Config
		change(reflect.ValueOf(&now).Elem(), field)
		if got := restartNeeded(&was, &now); !slices.Equal(got, []string{name}) {
			t.Errorf("%s changed: restartNeeded = %q; want [%s]", field, got, name)
		}
	}
}

// change sets the field at path (e.g. "OIDC.Issuer") in v to something
// other than its zero value.
func change(v reflect.Value, path string) {
	for _, name := range strings.Split(path, ".") {
		v = v.FieldByName(name)
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString("changed")
	case reflect.Int64:
		v.SetInt(1)
	case reflect.Slice:
		v.Set(reflect.Append(v, reflect.Zero(v.Type().Elem())))
	case reflect.Pointer:
		n := reflect.New(v.Type().Elem())
		if u, ok := n.Interface().(*url.URL); ok {
			u.Scheme, u.Host = "https", "changed.example"
		}
		v.Set(n)
	default:
		panic("change: no change for " + v.Kind().String())
	}
}
