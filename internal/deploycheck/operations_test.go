package deploycheck_test

import (
	"regexp"
	"strings"
	"testing"
)

// Every alarm in template.yaml has its section in docs/OPERATIONS.md: the runbook
// names it and its description links to a heading that exists.
func TestRunbookCoversEveryAlarm(t *testing.T) {
	tmpl := string(readRepoFile(t, "template.yaml"))
	runbook := string(readRepoFile(t, "docs/OPERATIONS.md"))
	anchors := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^## (.+)$`).FindAllStringSubmatch(runbook, -1) {
		anchors[strings.ReplaceAll(strings.ToLower(strings.TrimSpace(m[1])), " ", "-")] = true
	}
	alarms := regexp.MustCompile(`(?m)^  (\w+):\n    Type: AWS::CloudWatch::Alarm\n((?:    .*\n|\s*\n)*)`).FindAllStringSubmatch(tmpl, -1)
	if len(alarms) < 6 {
		t.Fatalf("template.yaml declares %d alarms; want at least 6 (dead letters, review cases, unpublished results, Lakala errors, API 5xx, processor)", len(alarms))
	}
	for _, a := range alarms {
		id, body := a[1], a[2]
		name := regexp.MustCompile(`AlarmName: !Sub loomipay-\$\{Stage\}-(\S+)`).FindStringSubmatch(body)
		link := regexp.MustCompile(`docs/OPERATIONS\.md#(\S+)`).FindStringSubmatch(body)
		switch {
		case name == nil:
			t.Errorf("%s: no AlarmName loomipay-${Stage}-…", id)
		case !strings.Contains(runbook, "loomipay-<stage>-"+name[1]):
			t.Errorf("%s: docs/OPERATIONS.md does not mention loomipay-<stage>-%s", id, name[1])
		}
		switch {
		case link == nil:
			t.Errorf("%s: AlarmDescription does not link to docs/OPERATIONS.md#…", id)
		case !anchors[link[1]]:
			t.Errorf("%s: links to #%s, which is no heading of docs/OPERATIONS.md (%v)", id, link[1], anchors)
		}
		if !strings.Contains(body, "AlarmActions: !If [HasAlarmTopic, [!Ref AlarmTopicArn]") {
			t.Errorf("%s: does not notify the AlarmTopicArn topic", id)
		}
	}
}
