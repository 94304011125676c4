// Package docexamples holds only tests: every fenced block of README.md, docs/*.md and
// sdk/go/README.md is an example that runs — shell against a real `loomipay dev`, Python and
// JavaScript with the interpreters, Go compiled against the SDK and this module — or is marked,
// with a reason, as one that does not. A renamed flag, route or field, or a changed SDK
// signature, fails make test. The markers and what the test does with each block are described in
// docs/LOCAL.md ("The docs' examples"). The tests also check that relative links lead somewhere
// and that the sandbox's knob table lists exactly its knobs.
package docexamples
