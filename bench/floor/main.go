// Command floor is the smallest Lambda function that does what every Loomi Pay function must:
// one PostgreSQL query through pgx/v5 and one XADD through go-redis/v9. Row 8 of the performance
// suite weighs it beside the functions: no function can be smaller than what these two packages
// and aws-lambda-go link on their own.
package main

import (
	"context"
	"encoding/json"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
)

func main() {
	lambda.Start(func(ctx context.Context, _ json.RawMessage) (string, error) {
		pool, err := pgxpool.New(ctx, "")
		if err != nil {
			return "", err
		}
		defer pool.Close()
		var one string
		if err := pool.QueryRow(ctx, "SELECT '1'").Scan(&one); err != nil {
			return "", err
		}
		rdb := redis.NewUniversalClient(&redis.UniversalOptions{})
		defer rdb.Close()
		return rdb.XAdd(ctx, &redis.XAddArgs{Stream: "floor", Values: []string{"one", one}}).Result()
	})
}
