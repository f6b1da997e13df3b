package main
import (
 _ "github.com/coreos/go-oidc/v3/oidc"
 _ "golang.org/x/oauth2"
 _ "github.com/gorilla/sessions"
 _ "github.com/gorilla/securecookie"
 _ "go.yaml.in/yaml/v3"
 _ "github.com/prometheus/client_golang/prometheus"
 _ "github.com/zitadel/oidc/v3/pkg/op"
 _ "github.com/chromedp/chromedp"
 _ "github.com/pquerna/otp/totp"
)
func main(){}
