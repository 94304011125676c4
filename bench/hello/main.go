// Command hello is the smallest aws-lambda-go function: row 7 of the performance suite compares
// each function's cold start with this one's, built and run the same way.
package main

import (
	"context"
	"encoding/json"

	"github.com/aws/aws-lambda-go/lambda"
)

func main() {
	lambda.Start(func(context.Context, json.RawMessage) (string, error) { return "hello", nil })
}
