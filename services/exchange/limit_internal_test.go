package exchange

import (
	"net/http"
	"strconv"
	"testing"
	"time"
)

func TestKeyedLimiter(t *testing.T) {
	l := newKeyedLimiter(6, 2, 3) // 6 a minute: one token every 10s, burst 2
	at := time.Unix(1_800_000_000, 0)
	for i := range 2 {
		if ok, _ := l.allow("a", at); !ok {
			t.Fatalf("request %d within the burst refused", i+1)
		}
	}
	ok, wait := l.allow("a", at)
	if ok || wait != 10*time.Second {
		t.Fatalf("third request: ok=%v wait=%v, want refused with 10s", ok, wait)
	}
	if ok, _ := l.allow("b", at); !ok {
		t.Fatal("another key shares the bucket")
	}
	if ok, _ := l.allow("a", at.Add(10*time.Second)); !ok {
		t.Fatal("a token did not come back after 10s")
	}
	if ok, _ := l.allow("a", at.Add(10*time.Second)); ok {
		t.Fatal("refused requests must not consume tokens, but only one came back")
	}
}

func TestKeyedLimiterEvictsLeastRecentlyUsed(t *testing.T) {
	l := newKeyedLimiter(1, 1, 3)
	at := time.Unix(1_800_000_000, 0)
	for i := range 1000 {
		l.allow("k"+strconv.Itoa(i), at)
		if n := l.len(); n > 3 {
			t.Fatalf("%d keys tracked, max 3", n)
		}
	}
	l.allow("hot", at)
	if ok, _ := l.allow("hot", at); ok {
		t.Fatal("burst 1 allowed twice")
	}
	l.allow("x", at)
	l.allow("y", at)
	if ok, _ := l.allow("hot", at); ok {
		t.Fatal("the recently used key was evicted before older ones")
	}
	l.allow("z", at) // evicts hot (least recently used now)
	l.allow("w", at)
	l.allow("v", at)
	if ok, _ := l.allow("hot", at); !ok {
		t.Fatal("an evicted key should start with a full bucket")
	}
}

func TestClientKey(t *testing.T) {
	tests := []struct {
		name, remote, header, value, want string
	}{
		{"ipv4", "203.0.113.7:5555", "", "", "203.0.113.7"},
		{"ipv6 per /64", "[2001:db8:1:2:3:4:5:6]:5555", "", "", "2001:db8:1:2::/64"},
		{"mapped ipv4", "[::ffff:203.0.113.7]:1", "", "", "203.0.113.7"},
		{"trusted header, last hop", "10.0.0.1:1", "X-Forwarded-For", "198.51.100.1, 198.51.100.9", "198.51.100.9"},
		{"header ignored unless configured", "10.0.0.1:1", "", "198.51.100.1", "10.0.0.1"},
		{"unparsable header falls back", "10.0.0.1:1", "X-Forwarded-For", "garbage", "10.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := http.NewRequest(http.MethodPost, "http://x/", nil)
			r.RemoteAddr = tt.remote
			if tt.value != "" {
				r.Header.Set("X-Forwarded-For", tt.value)
			}
			if got := clientKey(r, tt.header); got != tt.want {
				t.Fatalf("clientKey = %q, want %q", got, tt.want)
			}
		})
	}
}
