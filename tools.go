//go:build tools

// Modules the next pieces of work use (the browser tests and the demo
// provider's one-time codes), kept in go.mod until code imports them.
package main

import (
	_ "github.com/chromedp/chromedp"
	_ "github.com/pquerna/otp/totp"
)
