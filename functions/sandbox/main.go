// Command sandbox is the Lakala sandbox of a sandbox stage (template.yaml: Stage=sandbox, or
// LakalaSandbox=true under any stage but prod): Lakala's API, the cashier pages and the sandbox's
// knobs under /sandbox/ on an HTTP API of its own, its state in PostgreSQL (schema
// lakala_sandbox, sandbox.SchemaFor), so main-app developers integrate end to end in AWS without
// Lakala. It answers
// three kinds of event:
//   - the HTTP API's requests (payload 2.0);
//   - the SandboxSetup custom resource: on every deploy it makes the schema, registers the stage's
//     merchant (the LAKALA_* identity, the public half of LAKALA_PRIVATE_KEY) and answers with the
//     platform certificate, which template.yaml gives the other functions as LAKALA_PLATFORM_CERT;
//   - its schedule: the notifications due (retries) are delivered. A payer's action delivers its
//     notification before it answers; nothing outlives an invocation.
//
// It refuses to start under STAGE=prod, or without LAKALA_SANDBOX=true.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/aws/aws-lambda-go/cfn"
	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/awslabs/aws-lambda-go-api-proxy/httpadapter"

	"github.com/loomipay/loomipay/shared/config"
	"github.com/loomipay/loomipay/shared/lakala"
	"github.com/loomipay/loomipay/shared/postgres"
	"github.com/loomipay/loomipay/shared/sandbox"
)

// BasePath is where the sandbox's routes are, on its HTTP API: LAKALA_BASE_URL is the API's URL
// and this.
const BasePath = "/sandbox"

// physicalID names the one SandboxSetup resource.
const physicalID = "loomipay-lakala-sandbox"

func main() {
	sb, initErr := open(context.Background())
	if initErr != nil {
		config.LogStartupFailure(initErr)
	}
	// The custom resource is answered even when the sandbox cannot start, so that a deploy fails
	// at once with the reason rather than wait for CloudFormation's timeout.
	resource := cfn.LambdaWrap(func(ctx context.Context, ev cfn.Event) (string, map[string]any, error) {
		if ev.RequestType == cfn.RequestDelete {
			return physicalID, nil, nil // the schema stays: a stack removed keeps its data
		}
		if initErr != nil {
			return physicalID, nil, initErr
		}
		if ev.RequestType == cfn.RequestCreate {
			// As the tests play it; PUT /sandbox/faults {} for the optimistic reading.
			sb.SetFaults(sandbox.Pessimistic())
		}
		return physicalID, map[string]any{"PlatformCert": string(sb.PlatformCertPEM())}, nil
	})
	var handler *httpadapter.HandlerAdapterV2
	if initErr == nil {
		handler = httpadapter.NewV2(sb.Handler())
	}
	lambda.Start(func(ctx context.Context, raw json.RawMessage) (any, error) {
		var probe struct {
			RequestType    string `json:"RequestType"`
			ResponseURL    string `json:"ResponseURL"`
			RawPath        string `json:"rawPath"`
			RequestContext struct {
				HTTP struct {
					Method string `json:"method"`
				} `json:"http"`
			} `json:"requestContext"`
		}
		_ = json.Unmarshal(raw, &probe)
		switch {
		case probe.RequestType != "" && probe.ResponseURL != "":
			var ev cfn.Event
			if err := json.Unmarshal(raw, &ev); err != nil {
				return nil, err
			}
			return resource(ctx, ev)
		case initErr != nil:
			return nil, initErr
		case probe.RawPath != "" && probe.RequestContext.HTTP.Method != "":
			var ev events.APIGatewayV2HTTPRequest
			if err := json.Unmarshal(raw, &ev); err != nil {
				return nil, err
			}
			return handler.ProxyWithContext(ctx, ev)
		default: // the schedule
			n, err := sb.DeliverDue(ctx)
			return map[string]int{"attempted": n}, err
		}
	})
}

// open reads the configuration, refuses a production stage, and opens the sandbox on its schema
// with the stage's merchant.
func open(ctx context.Context) (*sandbox.Sandbox, error) {
	c, err := config.Load(ctx)
	if err != nil {
		return nil, err
	}
	switch {
	case c.Stage == "prod":
		return nil, errors.New("the Lakala sandbox never runs under STAGE=prod")
	case !c.LakalaSandbox:
		return nil, errors.New("the Lakala sandbox runs only where LAKALA_SANDBOX=true (a sandbox stage)")
	case c.DatabaseURL == "":
		return nil, errors.New("DATABASE_URL (or DATABASE_URL_SECRET_ARN) is not set")
	case c.LakalaPrivateKeyPEM == "":
		return nil, errors.New("LAKALA_PRIVATE_KEY (or LAKALA_PRIVATE_KEY_SECRET_ARN) is not set: the sandbox verifies the stage's requests with its public half")
	}
	key, err := lakala.ParsePrivateKey([]byte(c.LakalaPrivateKeyPEM))
	if err != nil {
		return nil, fmt.Errorf("LAKALA_PRIVATE_KEY: %w", err)
	}
	log := c.Logger()
	store, err := postgres.Open(ctx, c.DatabaseURL, postgres.Options{MaxConns: c.DatabaseMaxConn, StatementTimeout: c.StatementTimeout,
		LockTimeout: c.LockTimeout, IdleInTxTimeout: c.IdleInTxTimeout, RDSProxy: c.DatabaseRDSProxy, Logger: log})
	if err != nil {
		return nil, err
	}
	sb, err := sandbox.New(ctx, sandbox.Config{
		DB: store.Pool(), Schema: sandbox.SchemaFor(c.DatabaseURL), BasePath: BasePath, Inline: true, Logger: log,
		Merchants: []sandbox.Merchant{{AppID: c.LakalaAppID, SerialNo: c.LakalaSerialNo, PublicKey: &key.PublicKey,
			MerchantNo: c.LakalaMerchantNo, TermNo: c.LakalaTermNo, VposID: c.LakalaVposID}},
	})
	if err != nil {
		store.Close()
		return nil, err
	}
	return sb, nil
}
