package main

import (
	"context"
	"net/http"

	"github.com/loomipay/loomipay/shared/config"
	"github.com/loomipay/loomipay/shared/console"
	"github.com/loomipay/loomipay/shared/ops"
)

// withConsole serves the operator console at /console beside the API, with cookies
// that work over plain http on loopback.
func withConsole(deps *config.Deps, api http.Handler) http.Handler {
	h := console.New(deps.Ops(), console.Config{Dev: true, Logger: deps.Log}).Handler()
	mux := http.NewServeMux()
	mux.Handle("/console", h)
	mux.Handle("/console/", h)
	mux.Handle("/", api)
	return mux
}

// devOperator creates the local stack's first operator (admin "dev") and returns its token, or
// "" if an operator exists already.
func devOperator(ctx context.Context, deps *config.Deps) (string, error) {
	o := deps.Ops()
	a := ops.Actor{Name: "loomipay-dev", Role: ops.RoleAdmin, Via: "cli"}
	list, err := o.Operators(ctx, a)
	if err != nil || len(list) > 0 {
		return "", err
	}
	token, _, err := o.CreateOperator(ctx, a, "dev", ops.RoleAdmin)
	return token, err
}
