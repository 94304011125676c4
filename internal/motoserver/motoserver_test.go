package motoserver

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

func TestMain(m *testing.M) {
	code := m.Run()
	Stop()
	os.Exit(code)
}

// The server checks identities: the admin reads, the denied user is refused, an unknown key is
// refused, and a rotation keeps the version before as AWSPREVIOUS. moto answers a refusal with
// 403 and an XML body, even for JSON services such as Secrets Manager (AWS answers
// AccessDeniedException in JSON), so the SDK sees the status but cannot read the error's code.
func TestServer(t *testing.T) {
	s := Shared(t)
	arn := s.CreateSecret(t, "v1")
	s.Rotate(t, arn, "v2")
	if got := s.Versions(t, arn); got["AWSCURRENT"] != "v2" || got["AWSPREVIOUS"] != "v1" {
		t.Errorf("versions = %v; want AWSCURRENT v2, AWSPREVIOUS v1", got)
	}
	for name, creds := range map[string]aws.Credentials{
		"admin":   s.Admin,
		"denied":  s.Denied,
		"unknown": {AccessKeyID: "AKIDUNKNOWN", SecretAccessKey: "x"},
	} {
		c := secretsmanager.New(secretsmanager.Options{Region: Region, BaseEndpoint: aws.String(s.URL), Credentials: credentials.StaticCredentialsProvider{Value: creds}})
		out, err := c.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)})
		var respErr *awshttp.ResponseError
		switch {
		case name == "admin" && (err != nil || aws.ToString(out.SecretString) != "v2"):
			t.Errorf("admin: GetSecretValue = %v; want v2", err)
		case name != "admin" && (!errors.As(err, &respErr) || respErr.HTTPStatusCode() != 403):
			t.Errorf("%s: GetSecretValue error = %v; want a 403", name, err)
		}
	}
}
