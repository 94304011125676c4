package deploycheck_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/loomipay/loomipay/shared/httpapi"
)

// TestFunctionDependencies checks what each Lambda binary links, as built (-tags lambda.norpc):
// the HTTP functions not the processor, no function anything local-only or test-only (internal/);
// every function reads its secrets through the AWS SDK's own Secrets Manager client and default
// configuration (every credential source: the same code runs as loomipay serve and worker on ECS,
// EKS or EC2), and only the processor links the Lambda client (its scale-out).
func TestFunctionDependencies(t *testing.T) {
	root := repoRoot(t)
	const module = "github.com/loomipay/loomipay/"
	forbiddenEverywhere := []string{module + "internal/", "net/rpc", "net/http/pprof"}
	required := []string{"github.com/aws/aws-sdk-go-v2/config", "github.com/aws/aws-sdk-go-v2/service/secretsmanager"}
	for _, fn := range append(expectedFunctions(), "migrate") {
		t.Run(fn, func(t *testing.T) {
			cmd := exec.Command("go", "list", "-tags", "lambda.norpc", "-deps", "./functions/"+fn)
			cmd.Dir = root
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("go list -deps ./functions/%s: %v", fn, err)
			}
			deps := strings.Fields(string(out))
			forbidden := slices.Clone(forbiddenEverywhere)
			if fn != functionProcessor {
				forbidden = append(forbidden, module+"shared/processor", module+"shared/worker", "github.com/aws/aws-sdk-go-v2/service/lambda")
			}
			for _, d := range deps {
				for _, f := range forbidden {
					if d == f || strings.HasPrefix(d, f) {
						t.Errorf("functions/%s links %s", fn, d)
					}
				}
			}
			for _, r := range required {
				if !slices.Contains(deps, r) {
					t.Errorf("functions/%s does not link %s", fn, r)
				}
			}
			if fn == httpapi.FunctionWebhook && !slices.Contains(deps, module+"shared/lakala") {
				t.Errorf("functions/%s does not link shared/lakala: how does it verify notifications?", fn)
			}
		})
	}
}
