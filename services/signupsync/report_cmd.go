package main

import (
	"context"
	"errors"
)

func runReport(ctx context.Context, args []string, e env) error {
	return errors.New("report_cmd.go: being written")
}
