// Package e2e runs the Lambda binaries, built as they are deployed (static, lambda.norpc,
// stripped), each under its own AWS Lambda Runtime Interface Emulator, against the real
// PostgreSQL and Redis and the Lakala sandbox, and drives a payment and a refund through the
// emulators' invocation endpoints only. It has tests only.
package e2e
