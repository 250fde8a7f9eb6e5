package exchange

import (
	"container/list"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// keyedLimiter is a token bucket per key (subject or client address) in a
// map bounded to max entries. When full, the least recently used key is
// evicted; a key idle for longer than it takes its bucket to refill loses
// nothing by eviction, so with a max well above the number of keys active
// within one refill period eviction is invisible. It is safe for
// concurrent use.
type keyedLimiter struct {
	limit rate.Limit
	burst int
	max   int

	mu    sync.Mutex
	order *list.List // front: most recently used
	byKey map[string]*list.Element
}

type limiterEntry struct {
	key string
	lim *rate.Limiter
}

func newKeyedLimiter(perMinute float64, burst, max int) *keyedLimiter {
	return &keyedLimiter{
		limit: rate.Limit(perMinute / 60), burst: burst, max: max,
		order: list.New(), byKey: make(map[string]*list.Element),
	}
}

// allow takes one token for key at now. When none is left it reports how
// long until one is.
func (l *keyedLimiter) allow(key string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var lim *rate.Limiter
	if el, ok := l.byKey[key]; ok {
		l.order.MoveToFront(el)
		lim = el.Value.(*limiterEntry).lim
	} else {
		for l.order.Len() >= l.max {
			oldest := l.order.Back()
			l.order.Remove(oldest)
			delete(l.byKey, oldest.Value.(*limiterEntry).key)
		}
		lim = rate.NewLimiter(l.limit, l.burst)
		l.byKey[key] = l.order.PushFront(&limiterEntry{key: key, lim: lim})
	}
	r := lim.ReserveN(now, 1)
	if !r.OK() {
		return false, time.Minute
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// len reports how many keys are tracked.
func (l *keyedLimiter) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.byKey)
}

// clientKey is the rate-limit key of the caller: the address in header
// (the last value, which the nearest proxy appended) when header is set and
// holds one, else the connection's remote address. IPv6 addresses count
// per /64, the smallest block one subscriber usually gets.
func clientKey(r *http.Request, header string) string {
	addr, ok := clientAddr(r, header)
	if !ok {
		return r.RemoteAddr
	}
	return addrKey(addr)
}

// clientAddr is the caller's address as clientKey reads it, whole.
func clientAddr(r *http.Request, header string) (netip.Addr, bool) {
	if header != "" {
		if vals := r.Header.Values(header); len(vals) > 0 {
			parts := strings.Split(vals[len(vals)-1], ",")
			if addr, err := netip.ParseAddr(strings.TrimSpace(parts[len(parts)-1])); err == nil {
				return addr.Unmap().WithZone(""), true
			}
		}
	}
	host := r.RemoteAddr
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	return addr.Unmap().WithZone(""), true
}

func addrKey(addr netip.Addr) string {
	addr = addr.Unmap().WithZone("")
	if addr.Is6() {
		p, _ := addr.Prefix(64)
		return p.String()
	}
	return addr.String()
}
