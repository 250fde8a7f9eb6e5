package main

import (
	"context"
	"errors"
)

func runExport(ctx context.Context, args []string, e env) error { return errors.New("export_cmd.go: being written") }
