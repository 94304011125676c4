package docexamples

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// root is the repository, from this package's directory.
var root = func() string {
	r, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		panic(err)
	}
	return r
}()

// A block is one fenced block of a document, with the markers (HTML comments on the lines just
// above its fence) that say how it is run.
type block struct {
	file   string // relative to root
	line   int    // of the opening fence, 1-based
	lang   string // the info string: sh, go, python, js, text
	text   string
	notRun string   // <!-- not run: REASON -->
	banner bool     // <!-- values from the banner -->
	expect []string // <!-- expect: A | B -->
}

func (b block) String() string { return fmt.Sprintf("%s:%d", b.file, b.line) }

// languages are the info strings a block may have; text is output or a diagram, never run.
var languages = map[string]bool{"sh": true, "go": true, "python": true, "js": true, "text": true}

// docFiles are the documents whose blocks are examples, README.md first (its tour runs first).
func docFiles(t *testing.T) []string {
	t.Helper()
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil || len(docs) == 0 {
		t.Fatalf("docs/*.md: %v (%d files)", err, len(docs))
	}
	sort.Strings(docs)
	files := []string{"README.md"}
	for _, d := range docs {
		rel, _ := filepath.Rel(root, d)
		files = append(files, rel)
	}
	return append(files, filepath.Join("sdk", "go", "README.md"))
}

var (
	fenceRE  = regexp.MustCompile("^```(.*)$")
	markerRE = regexp.MustCompile(`^<!--\s*(.*?)\s*-->$`)
)

// parseBlocks reads a document's fenced blocks and their markers; what breaks the rules (a block
// without a language, an unknown marker, a not-run block without its reason) is an error.
func parseBlocks(file string) ([]block, []error) {
	f, err := os.Open(filepath.Join(root, file))
	if err != nil {
		return nil, []error{err}
	}
	defer f.Close()
	var (
		blocks  []block
		errs    []error
		markers []string // comment lines just above the current line
		cur     *block
		body    []string
		n       int
	)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		n++
		line := sc.Text()
		if cur != nil {
			if strings.TrimSpace(line) == "```" {
				cur.text = strings.Join(body, "\n") + "\n"
				blocks = append(blocks, *cur)
				cur, body = nil, nil
				continue
			}
			body = append(body, line)
			continue
		}
		if m := fenceRE.FindStringSubmatch(line); m != nil {
			b := block{file: file, line: n, lang: strings.TrimSpace(m[1])}
			if !languages[b.lang] {
				errs = append(errs, fmt.Errorf("%s: a fenced block without a known language (%q): say sh, go, python or js for an example, text for output", b, b.lang))
			}
			for _, mk := range markers {
				switch {
				case strings.HasPrefix(mk, "not run:"):
					b.notRun = strings.TrimSpace(strings.TrimPrefix(mk, "not run:"))
					if b.notRun == "" {
						errs = append(errs, fmt.Errorf("%s: <!-- not run: --> needs its reason", b))
					}
				case mk == "not run":
					errs = append(errs, fmt.Errorf("%s: <!-- not run --> needs its reason (<!-- not run: REASON -->)", b))
				case mk == "values from the banner":
					b.banner = true
				case strings.HasPrefix(mk, "expect:"):
					for _, e := range strings.Split(strings.TrimPrefix(mk, "expect:"), " | ") {
						if e = strings.TrimSpace(e); e != "" {
							b.expect = append(b.expect, e)
						}
					}
				default:
					errs = append(errs, fmt.Errorf("%s: unknown marker <!-- %s --> (not run: REASON, values from the banner, expect: A | B)", b, mk))
				}
			}
			if b.lang == "text" && (b.notRun != "" || b.banner || b.expect != nil) {
				errs = append(errs, fmt.Errorf("%s: a text block is never run; it takes no marker", b))
			}
			cur, markers = &b, nil
			continue
		}
		if m := markerRE.FindStringSubmatch(strings.TrimSpace(line)); m != nil && isMarker(m[1]) {
			markers = append(markers, m[1])
			continue
		}
		if strings.TrimSpace(line) != "" || len(markers) > 0 {
			// a marker belongs to the block right below it; anything between orphans it
			for _, mk := range markers {
				errs = append(errs, fmt.Errorf("%s:%d: marker <!-- %s --> is not right above a fenced block", file, n, mk))
			}
			markers = nil
		}
	}
	if cur != nil {
		errs = append(errs, fmt.Errorf("%s: the block never closes", cur))
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, err)
	}
	return blocks, errs
}

// isMarker tells a marker from any other HTML comment (ERRORS.md's note on how it is generated).
func isMarker(s string) bool {
	return strings.HasPrefix(s, "not run") || s == "values from the banner" || strings.HasPrefix(s, "expect:")
}

// allBlocks parses every document, failing t on any rule broken.
func allBlocks(t *testing.T) []block {
	t.Helper()
	var all []block
	for _, f := range docFiles(t) {
		bs, errs := parseBlocks(f)
		for _, err := range errs {
			t.Error(err)
		}
		all = append(all, bs...)
	}
	return all
}

// TestEveryBlockIsAnExampleOrSaysWhyNot: the rules of the markers, on every document. The tests
// below run what they mark as runnable.
func TestEveryBlockIsAnExampleOrSaysWhyNot(t *testing.T) {
	blocks := allBlocks(t)
	count := map[string]int{}
	for _, b := range blocks {
		switch {
		case b.lang == "text":
			count["text"]++
		case b.notRun != "":
			count["not run"]++
		default:
			count["run "+b.lang]++
		}
		if b.banner && b.lang != "sh" {
			t.Errorf("%s: only a sh block takes values from the banner", b)
		}
	}
	t.Logf("blocks: %v", count)
	if count["run sh"] < 10 || count["run go"] < 2 || count["run python"] < 2 || count["run js"] < 1 {
		t.Errorf("found %v runnable blocks; the docs have more (is the parser broken?)", count)
	}
}

func TestBlockMarkers(t *testing.T) {
	doc := strings.Join([]string{
		"<!-- not run: needs AWS -->",
		"```sh",
		"sam deploy",
		"```",
		"",
		"<!-- values from the banner -->",
		"```sh",
		"export KEY='lp_…'",
		"```",
		"<!-- expect: a | b c -->",
		"```sh",
		"echo a b c",
		"```",
		"```",
		"no language",
		"```",
		"<!-- not run: -->",
		"```go",
		"package main",
		"```",
		"<!-- expect: x -->",
		"text between",
		"```text",
		"out",
		"```",
	}, "\n") + "\n"
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "x.md"), []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	rel, _ := filepath.Rel(root, filepath.Join(dir, "x.md"))
	blocks, errs := parseBlocks(rel)
	if len(blocks) != 6 {
		t.Fatalf("parsed %d blocks; want 6: %+v", len(blocks), blocks)
	}
	if blocks[0].notRun != "needs AWS" || !blocks[1].banner || strings.Join(blocks[2].expect, ",") != "a,b c" {
		t.Errorf("markers not read: %+v", blocks[:3])
	}
	var msgs []string
	for _, err := range errs {
		msgs = append(msgs, err.Error())
	}
	all := strings.Join(msgs, "\n")
	for _, want := range []string{"without a known language", "needs its reason", "is not right above a fenced block"} {
		if !strings.Contains(all, want) {
			t.Errorf("errors %q do not say %q", all, want)
		}
	}
	if len(errs) != 3 {
		t.Errorf("got %d errors; want 3:\n%s", len(errs), all)
	}
}
