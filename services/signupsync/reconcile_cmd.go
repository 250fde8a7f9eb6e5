package main

import (
	"context"
	"errors"
)

func runReconcile(ctx context.Context, args []string, e env) error { return errors.New("reconcile_cmd.go: being written") }
