package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/cfn"
)

func TestShouldMigrate(t *testing.T) {
	const arn = "arn:aws:lambda:cn-north-1:123456789012:function:loomipay-prod-migrate:"
	cases := []struct {
		name, requestType, version, running string
		want                                bool
	}{
		{"create", "Create", arn + "1", "1", true},
		{"update to the new code", "Update", arn + "8", "8", true},
		{"rollback: the previous version asked while the new one runs", "Update", arn + "7", "8", false},
		{"delete", "Delete", arn + "8", "8", false},
		{"no Version property (by hand, or an older template)", "Update", "", "8", true},
		{"unpublished code ($LATEST, the emulator)", "Create", arn + "1", "$LATEST", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ev := cfn.Event{RequestType: cfn.RequestType(tc.requestType), ResourceProperties: map[string]any{}}
			if tc.version != "" {
				ev.ResourceProperties["Version"] = tc.version
			}
			if got := shouldMigrate(ev, tc.running); got != tc.want {
				t.Errorf("shouldMigrate = %v; want %v", got, tc.want)
			}
		})
	}
}

// CloudFormation refuses a response over 4,096 bytes: the reason is cut well below it.
func TestShortenKeepsTheReasonSmall(t *testing.T) {
	long := errors.New(strings.Repeat("x", 10_000))
	if got := len(shorten(long).Error()); got > maxReason+100 {
		t.Errorf("reason is %d bytes; want about %d", got, maxReason)
	}
	if short := errors.New("migrate: boom"); shorten(short) != short {
		t.Error("a short error was changed")
	}
}
