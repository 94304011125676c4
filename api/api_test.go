package api

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"testing"

	"gopkg.in/yaml.v3"
)

var update = flag.Bool("update", false, "rewrite openapi.json from openapi.yaml")

// toJSON is openapi.yaml as indented JSON (keys sorted, as encoding/json writes maps).
func toJSON(t *testing.T) []byte {
	t.Helper()
	var doc any
	if err := yaml.Unmarshal(YAML, &doc); err != nil {
		t.Fatalf("parse openapi.yaml: %v", err)
	}
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatalf("openapi.yaml as JSON: %v", err)
	}
	return append(out, '\n')
}

func TestJSONIsTheYAML(t *testing.T) {
	want := toJSON(t)
	if *update {
		if err := os.WriteFile("openapi.json", want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if !bytes.Equal(JSON, want) {
		t.Fatal("api/openapi.json is not api/openapi.yaml as JSON: run go generate ./api")
	}
}
