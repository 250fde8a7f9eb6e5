package importer

import (
	"context"
	"errors"
	"fmt"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/internal/auth0api"
)

// auth0Enricher adapts the Management API client to [Enricher], mapping its
// error classes onto the importer's: 404 → ErrUserGone, 429/5xx/network →
// transient with the server's retry hint.
type auth0Enricher struct{ c *auth0api.Client }

// Auth0Enricher returns an [Enricher] backed by the Auth0 Management API.
func Auth0Enricher(c *auth0api.Client) Enricher { return auth0Enricher{c: c} }

func (a auth0Enricher) GetUser(ctx context.Context, id string) (events.SignupData, error) {
	d, err := a.c.GetUser(ctx, id)
	switch {
	case err == nil:
		return d, nil
	case errors.Is(err, auth0api.ErrNotFound):
		return events.SignupData{}, fmt.Errorf("%w: %w", ErrUserGone, err)
	case auth0api.IsTransient(err):
		return events.SignupData{}, transient(err, auth0api.RetryAfter(err))
	default:
		return events.SignupData{}, err
	}
}
