package docexamples

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"

	"github.com/loomipay/loomipay/shared/sandbox"
)

var (
	linkRE     = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	headingRE  = regexp.MustCompile(`(?m)^#{1,6} (.+)$`)
	codeSpanRE = regexp.MustCompile("`[^`\n]*`")
)

// prose is a document without its fenced blocks and code spans, where links live.
func prose(doc string) string {
	var out []string
	in := false
	for _, line := range strings.Split(doc, "\n") {
		if strings.HasPrefix(line, "```") {
			in = !in
			continue
		}
		if !in {
			out = append(out, codeSpanRE.ReplaceAllString(line, ""))
		}
	}
	return strings.Join(out, "\n")
}

// slug is the anchor GitHub gives a heading: lower case, spaces to hyphens, punctuation dropped.
func slug(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

func anchors(doc string) map[string]bool {
	out := map[string]bool{}
	for _, m := range headingRE.FindAllStringSubmatch(prose(doc), -1) {
		out[slug(strings.ReplaceAll(m[1], "`", ""))] = true
	}
	return out
}

// TestRelativeLinksLeadSomewhere: every relative link of the documents names a file or folder of
// the repository, and its #anchor a heading of that document. Moving a section breaks no link
// silently.
func TestRelativeLinksLeadSomewhere(t *testing.T) {
	checked := 0
	for _, file := range docFiles(t) {
		raw, err := os.ReadFile(filepath.Join(root, file))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range linkRE.FindAllStringSubmatch(prose(string(raw)), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			path, anchor, _ := strings.Cut(target, "#")
			full := filepath.Join(root, file) // a link to #anchor alone is in this file
			if path != "" {
				full = filepath.Join(filepath.Dir(filepath.Join(root, file)), path)
			}
			checked++
			st, err := os.Stat(full)
			if err != nil {
				t.Errorf("%s: link %q: %v", file, target, err)
				continue
			}
			if anchor == "" {
				continue
			}
			if st.IsDir() || !strings.HasSuffix(full, ".md") {
				t.Errorf("%s: link %q has an anchor but does not name a Markdown file", file, target)
				continue
			}
			doc, err := os.ReadFile(full)
			if err != nil {
				t.Fatal(err)
			}
			if !anchors(string(doc))[anchor] {
				t.Errorf("%s: link %q: no heading of %s has the anchor #%s", file, target, filepath.Base(full), anchor)
			}
		}
	}
	if checked < 30 {
		t.Errorf("checked %d links; the documents have more (is the scan broken?)", checked)
	}
}

func TestSlug(t *testing.T) {
	for heading, want := range map[string]string{
		"Redis users on ElastiCache (RBAC)":               "redis-users-on-elasticache-rbac",
		"Before a deploy: AWS's linter":                   "before-a-deploy-awss-linter",
		"What is kept, and for how long":                  "what-is-kept-and-for-how-long",
		"The docs' examples":                              "the-docs-examples",
		"Payment attempts — one definition of an attempt": "payment-attempts--one-definition-of-an-attempt",
	} {
		if got := slug(heading); got != want {
			t.Errorf("slug(%q) = %q; want %q", heading, got, want)
		}
	}
}

// TestSandboxKnobTable: docs/LOCAL.md's table of the sandbox's fault knobs names exactly the
// knobs sandbox.Faults takes (its JSON names), so a knob added or renamed shows up in the docs.
func TestSandboxKnobTable(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(root, "docs", "LOCAL.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(raw), "| knob | effect |")
	if !ok {
		t.Fatal("docs/LOCAL.md has no | knob | effect | table")
	}
	var documented []string
	for _, line := range strings.Split(table, "\n")[2:] {
		if !strings.HasPrefix(line, "|") {
			break
		}
		first := strings.Split(strings.Trim(line, "|"), "|")[0]
		for _, m := range regexp.MustCompile("`([a-z_]+)`").FindAllStringSubmatch(first, -1) {
			documented = append(documented, m[1])
		}
	}
	b, err := json.Marshal(sandbox.Faults{})
	if err != nil {
		t.Fatal(err)
	}
	var knobs map[string]any
	if err := json.Unmarshal(b, &knobs); err != nil {
		t.Fatal(err)
	}
	var want []string
	for k := range knobs {
		want = append(want, k)
	}
	slices.Sort(documented)
	slices.Sort(want)
	if !slices.Equal(documented, want) {
		t.Errorf("docs/LOCAL.md's knob table:\n got  %v\n want %v (sandbox.Faults)", documented, want)
	}
}
