//go:build nodemo

package main

import (
	"context"
	"fmt"
	"io"
)

// runDemo explains where the demo went: production builds (-tags nodemo,
// as the Dockerfile builds) leave out the development provider and the
// demo bank, so that a gateway in production cannot start either.
func runDemo(_ context.Context, _ []string, _, stderr io.Writer) int {
	fmt.Fprint(stderr, `stepgate demo: this binary was built with -tags nodemo and has no demo.
  Run it from a source checkout instead:  go run . demo
`)
	return 2
}
