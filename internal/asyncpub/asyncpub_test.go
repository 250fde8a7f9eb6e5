package asyncpub_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/signupsync/signupsync/events"
	"github.com/signupsync/signupsync/internal/asyncpub"
	"github.com/signupsync/signupsync/internal/testenv"
)

// TestEveryPublishIsCountedOnceAcknowledged publishes more messages than
// the batch keeps outstanding, twice with the same Nats-Msg-Ids: every
// message is counted published once JetStream acknowledged it, the second
// round as duplicates, and the stream holds each message once.
func TestEveryPublishIsCountedOnceAcknowledged(t *testing.T) {
	n := testenv.StartNATS(t)
	_, js := n.Connect()
	testenv.Ensure(t, js)
	ctx := context.Background()
	for round := range 2 {
		b := asyncpub.New(js, events.StreamSignups, 16)
		var total asyncpub.Counts
		for i := range 100 {
			m := nats.NewMsg("signups.v1.backfill")
			m.Data = []byte(`{}`)
			m.Header.Set(nats.MsgIdHdr, fmt.Sprintf("id-%d", i))
			c, err := b.Publish(ctx, m)
			if err != nil {
				t.Fatal(err)
			}
			total.Published, total.Duplicates = total.Published+c.Published, total.Duplicates+c.Duplicates
		}
		c, err := b.Settle(ctx)
		if err != nil {
			t.Fatal(err)
		}
		total.Published, total.Duplicates = total.Published+c.Published, total.Duplicates+c.Duplicates
		if want := int64(100 * round); total.Published != 100 || total.Duplicates != want {
			t.Fatalf("round %d: %+v, want 100 published, %d duplicates", round, total, want)
		}
	}
	st, _ := js.Stream(ctx, events.StreamSignups)
	if info, _ := st.Info(ctx); info.State.Msgs != 100 {
		t.Fatalf("%d messages stored, want 100", info.State.Msgs)
	}
	var none *asyncpub.Batch
	if c, err := none.Settle(ctx); err != nil || c != (asyncpub.Counts{}) {
		t.Fatalf("settling a nil batch: %+v %v", c, err)
	}
}
