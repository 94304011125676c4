package main

import (
	"context"
	"net/http"

	"github.com/loomipay/loomipay/shared/config"
	"github.com/loomipay/loomipay/shared/console"
	"github.com/loomipay/loomipay/shared/httpapi"
	"github.com/loomipay/loomipay/shared/ops"
)

// serviceHandler is everything the Lambda functions serve, in one handler: every API route
// (config.APIHandler, as each function wires its own) and the operator console at /console, as
// API Gateway routes them. loomipay serve and dev both serve it, so every entry point offers the
// same routes with the same checks. dev serves the console's cookies without Secure, for
// http://127.0.0.1.
func serviceHandler(deps *config.Deps, dev bool) http.Handler {
	h := console.New(deps.Ops(), console.Config{Dev: dev, Logger: deps.Log, ClientIPHeader: deps.ClientIPHeader}).Handler()
	mux := http.NewServeMux()
	mux.Handle("/console", h)
	mux.Handle("/console/", h)
	mux.Handle("/", deps.APIHandler())
	// This mux would redirect a path with ".." before the API's own guard sees it.
	return httpapi.CanonicalPaths(deps.Log, mux)
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
