// Package api embeds the single description of Loomi Pay's HTTP API: openapi.yaml as written
// (every HTTP test validates its traffic against it) and openapi.json, the same document as the
// service serves it.
package api

import _ "embed"

// Regenerate openapi.json after editing openapi.yaml; a test fails while they differ.
//go:generate go test -run TestJSONIsTheYAML -update .

// YAML is api/openapi.yaml as written.
//
//go:embed openapi.yaml
var YAML []byte

// JSON is the document as JSON, generated from openapi.yaml and committed, so the functions that
// serve it do not link a YAML parser (a few hundred kilobytes of every bootstrap) to convert it.
//
//go:embed openapi.json
var JSON []byte
