package main

import (
	"context"
	"errors"
)

func runBackfill(ctx context.Context, args []string, e env) error {
	return errors.New("backfill_cmd.go: being written")
}
