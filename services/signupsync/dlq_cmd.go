package main

import (
	"context"
	"errors"
)

func runDLQ(ctx context.Context, args []string, e env) error {
	return errors.New("dlq_cmd.go: being written")
}
