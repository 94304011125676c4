//go:build unix

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/loomipay/loomipay/internal/testenv"
)

// TestMigrateFunction runs functions/migrate under the emulator on an empty schema, as the
// deploy does: first as CloudFormation's custom resource (it must migrate and answer SUCCESS at
// the ResponseURL), then invoked by hand (nothing left to apply), then the stack's Delete (no
// change, SUCCESS); and a migrate function that cannot start, which must answer all the same.
func TestMigrateFunction(t *testing.T) {
	ctx := context.Background()
	rie, _, bootstraps := buildUnderEmulator(t, "migrate")
	// An empty schema of its own: testenv's schemas come migrated, so drop what it made.
	store, schema := testenv.PostgresSchema(t)
	if _, err := store.Pool().Exec(ctx, "DROP SCHEMA "+schema+" CASCADE; CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	fn := startFunction(t, rie, "migrate", bootstraps["migrate"], []string{
		"PATH=" + os.Getenv("PATH"),
		"AWS_LAMBDA_FUNCTION_NAME=loomipay-e2e-migrate",
		"AWS_LAMBDA_FUNCTION_VERSION=3",
		"AWS_LAMBDA_FUNCTION_TIMEOUT=60",
		"DATABASE_URL=" + testenv.SchemaURL(schema),
		"REDIS_URL=" + testenv.RedisURL(),
		"LOG_LEVEL=info",
	})

	// CloudFormation's side: the pre-signed URL the function PUTs its answer to.
	responses := make(chan map[string]any, 4)
	cfnEndpoint := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var resp map[string]any
		if r.Method != http.MethodPut || json.Unmarshal(body, &resp) != nil {
			t.Errorf("ResponseURL got %s %q; want a PUT of a JSON response", r.Method, body)
		}
		responses <- resp
	}))
	t.Cleanup(cfnEndpoint.Close)
	// As template.yaml's SchemaMigrations sends it: the token is the live alias, the version a
	// property (the function runs version 3: AWS_LAMBDA_FUNCTION_VERSION below).
	const fnARN = "arn:aws:lambda:us-east-1:123456789012:function:loomipay-e2e-migrate"
	versionEvent := func(requestType, version string) []byte {
		b, _ := json.Marshal(map[string]any{
			"RequestType": requestType, "ResponseURL": cfnEndpoint.URL + "/presigned",
			"StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/loomipay-e2e/1", "RequestId": "req-" + requestType,
			"LogicalResourceId": "SchemaMigrations", "ResourceType": "Custom::Migrations", "PhysicalResourceId": "loomipay-migrations",
			"ResourceProperties": map[string]any{"ServiceToken": fnARN + ":live", "Version": fnARN + ":" + version},
		})
		return b
	}
	resourceEvent := func(requestType string) []byte { return versionEvent(requestType, "3") }
	tables := func() int {
		var n int
		if err := store.Pool().QueryRow(ctx, "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1", schema).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	awaitResponse := func(what string) map[string]any {
		select {
		case r := <-responses:
			return r
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: no answer at the ResponseURL", what)
			return nil
		}
	}

	if _, err := fn.Invoke(ctx, resourceEvent("Create")); err != nil {
		t.Fatalf("custom resource Create: %v", err)
	}
	if r := awaitResponse("Create"); r["Status"] != "SUCCESS" {
		t.Fatalf("Create answered %v; want Status SUCCESS", r)
	}
	if n := tables(); n < 5 {
		t.Fatalf("tables after the Create = %d; want the schema (orders, refunds, keys, tasks, outbox, …)", n)
	}
	var version int
	if err := store.Pool().QueryRow(ctx, "SELECT max(version) FROM "+schema+".schema_migrations").Scan(&version); err != nil || version < 1 {
		t.Fatalf("schema_migrations max(version) = %d, %v", version, err)
	}

	payload, err := fn.Invoke(ctx, []byte(`{}`))
	if err != nil {
		t.Fatalf("direct invocation: %v", err)
	}
	var res struct{ Applied *int }
	if err := json.Unmarshal(payload, &res); err != nil || res.Applied == nil || *res.Applied != 0 {
		t.Errorf("direct invocation answered %s; want {\"applied\":0}", payload)
	}

	// A rollback's Update asks for an older version than the one running: it answers SUCCESS
	// and applies nothing. The newest migration's record is removed first, so applying it again
	// (its tables exist) would fail, and a skipped one leaves the record missing.
	var name string
	if err := store.Pool().QueryRow(ctx, "DELETE FROM "+schema+".schema_migrations WHERE version = $1 RETURNING name", version).Scan(&name); err != nil {
		t.Fatal(err)
	}
	if _, err := fn.Invoke(ctx, versionEvent("Update", "2")); err != nil {
		t.Fatalf("custom resource Update of a rollback: %v", err)
	}
	if r := awaitResponse("rollback Update"); r["Status"] != "SUCCESS" {
		t.Fatalf("rollback Update answered %v; want SUCCESS", r)
	}
	var recorded int
	if err := store.Pool().QueryRow(ctx, "SELECT count(*) FROM "+schema+".schema_migrations WHERE version = $1", version).Scan(&recorded); err != nil || recorded != 0 {
		t.Fatalf("migration %d recorded %d times after the rollback Update (%v); want 0: nothing applied", version, recorded, err)
	}
	if _, err := store.Pool().Exec(ctx, "INSERT INTO "+schema+".schema_migrations (version, name) VALUES ($1, $2)", version, name); err != nil {
		t.Fatal(err)
	}

	before := tables()
	if _, err := fn.Invoke(ctx, resourceEvent("Delete")); err != nil {
		t.Fatalf("custom resource Delete: %v", err)
	}
	if r := awaitResponse("Delete"); r["Status"] != "SUCCESS" || r["PhysicalResourceId"] != "loomipay-migrations" {
		t.Errorf("Delete answered %v; want SUCCESS for loomipay-migrations", r)
	}
	if after := tables(); after != before {
		t.Errorf("tables after Delete = %d; want %d (Delete changes nothing)", after, before)
	}

	// A function that cannot start (here: no database) still answers, so CloudFormation does
	// not wait for the resource's timeout: FAILED with the reason for a Create, SUCCESS for the
	// Delete of a rollback or a stack removal.
	broken := startFunction(t, rie, "migrate-broken", bootstraps["migrate"], []string{
		"PATH=" + os.Getenv("PATH"),
		"AWS_LAMBDA_FUNCTION_NAME=loomipay-e2e-migrate",
		"AWS_LAMBDA_FUNCTION_TIMEOUT=60",
		"REDIS_URL=" + testenv.RedisURL(),
		"LOG_LEVEL=info",
	})
	if _, err := broken.Invoke(ctx, resourceEvent("Create")); err != nil {
		t.Fatalf("custom resource Create on a function that cannot start: %v", err)
	}
	if r := awaitResponse("Create without a database"); r["Status"] != "FAILED" || !strings.Contains(fmt.Sprint(r["Reason"]), "DATABASE_URL") {
		t.Errorf("Create answered %v; want FAILED naming DATABASE_URL", r)
	}
	if _, err := broken.Invoke(ctx, resourceEvent("Delete")); err != nil {
		t.Fatalf("custom resource Delete on a function that cannot start: %v", err)
	}
	if r := awaitResponse("Delete without a database"); r["Status"] != "SUCCESS" {
		t.Errorf("Delete answered %v; want SUCCESS (nothing to undo)", r)
	}
}
