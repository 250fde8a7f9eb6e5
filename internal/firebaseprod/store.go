package firebaseprod

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
)

// Provider ids of the sign-in methods Firebase derives from an account's own
// fields rather than links: the email with a password hash, the phone
// number.
const (
	providerPassword = "password"
	providerPhone    = "phone"
)

// ErrUIDExists is returned by [Server.Insert] when the uid is taken.
var ErrUIDExists = errors.New("firebaseprod: uid already exists")

// Identity is a federated provider identity: the provider id (google.com)
// and the user's id at that provider.
type Identity struct {
	ProviderID string `json:"providerId"`
	RawID      string `json:"rawId"`
}

// Provider is a provider identity linked to an account, with the profile
// the provider gave.
type Provider struct {
	ProviderID  string `json:"providerId"`
	RawID       string `json:"rawId"`
	Email       string `json:"email,omitempty"`
	DisplayName string `json:"displayName,omitempty"`
	PhotoURL    string `json:"photoUrl,omitempty"`
	PhoneNumber string `json:"phoneNumber,omitempty"`
}

// HashConfig is the password hash configuration an account's PasswordHash
// was made with, as the import call named it (hashAlgorithm, signerKey, ...).
type HashConfig struct {
	Algorithm         string `json:"hashAlgorithm,omitempty"`
	SignerKey         string `json:"signerKey,omitempty"`
	SaltSeparator     string `json:"saltSeparator,omitempty"`
	Rounds            int    `json:"rounds,omitempty"`
	MemoryCost        int    `json:"memoryCost,omitempty"`
	CPUMemCost        int    `json:"cpuMemCost,omitempty"`
	Parallelization   int    `json:"parallelization,omitempty"`
	BlockSize         int    `json:"blockSize,omitempty"`
	DkLen             int    `json:"dkLen,omitempty"`
	PasswordHashOrder string `json:"passwordHashOrder,omitempty"`
}

// Account is one Firebase account as the stand-in holds it.
type Account struct {
	UID           string `json:"localId"`
	Email         string `json:"email,omitempty"` // lower-case
	EmailVerified bool   `json:"emailVerified,omitempty"`
	DisplayName   string `json:"displayName,omitempty"`
	PhotoURL      string `json:"photoUrl,omitempty"`
	PhoneNumber   string `json:"phoneNumber,omitempty"`
	Disabled      bool   `json:"disabled,omitempty"`
	// CustomAttributes is the custom claims object, serialised.
	CustomAttributes string `json:"customAttributes,omitempty"`
	// Providers are the linked federated identities. The "password" and
	// "phone" entries Firebase lists are derived from Email with
	// PasswordHash and from PhoneNumber, and are not held here.
	Providers []Provider `json:"providers,omitempty"`
	// PasswordHash and Salt are base64, as imported.
	PasswordHash string      `json:"passwordHash,omitempty"`
	Salt         string      `json:"salt,omitempty"`
	Hash         *HashConfig `json:"hash,omitempty"`
	// CreatedAt, LastLoginAt and PasswordUpdatedAt are Unix milliseconds;
	// ValidSince is Unix seconds.
	CreatedAt         int64 `json:"createdAt,omitempty"`
	LastLoginAt       int64 `json:"lastLoginAt,omitempty"`
	PasswordUpdatedAt int64 `json:"passwordUpdatedAt,omitempty"`
	ValidSince        int64 `json:"validSince,omitempty"`
}

func (a Account) clone() Account {
	a.Providers = slices.Clone(a.Providers)
	if a.Hash != nil {
		h := *a.Hash
		a.Hash = &h
	}
	return a
}

func (a Account) identities() []Identity {
	ids := make([]Identity, 0, len(a.Providers))
	for _, p := range a.Providers {
		ids = append(ids, Identity{p.ProviderID, p.RawID})
	}
	return ids
}

// maxReplacedUIDs bounds Stats.ReplacedUIDs.
const maxReplacedUIDs = 100

// Stats is what a project holds and what it was asked.
type Stats struct {
	// Accounts is the number of accounts.
	Accounts int `json:"accounts"`
	// Replacements counts imported users whose uid an account already had
	// (including an earlier user of the same call): each replaced that
	// account whole.
	Replacements int `json:"replacements"`
	// ReplacedUIDs are the uids of the first replacements (at most 100),
	// in order, to name them in a failing test.
	ReplacedUIDs []string `json:"replacedUids,omitempty"`
	// DuplicateEmails are the (lower-case) emails more than one account
	// holds, sorted.
	DuplicateEmails []string `json:"duplicateEmails,omitempty"`
	// DuplicateIdentities are the provider identities more than one
	// account holds, sorted.
	DuplicateIdentities []Identity `json:"duplicateIdentities,omitempty"`
	// Calls counts the calls per endpoint (Endpoint*), whatever their
	// answer: an SDK call that retries counts once per attempt.
	Calls map[string]int `json:"calls"`
	// Unavailable counts the calls answered 503 by SetUnavailable.
	Unavailable int `json:"unavailable"`
}

type set map[string]struct{}

// entry is an account with its insertion sequence (for oldest-first
// answers).
type entry struct {
	Account
	seq uint64
}

// project holds one project's accounts, their indexes and counters.
type project struct {
	mu           sync.Mutex
	accounts     map[string]*entry
	byEmail      map[string]set
	byPhone      map[string]set
	byIdentity   map[Identity]set
	sorted       []string // uids ascending; nil when stale
	seq          uint64
	replacements int
	replaced     []string
	calls        map[string]int
	unavailable  int
}

func newProject() *project {
	return &project{
		accounts:   map[string]*entry{},
		byEmail:    map[string]set{},
		byPhone:    map[string]set{},
		byIdentity: map[Identity]set{},
		calls:      map[string]int{},
	}
}

func (p *project) count(endpoint string) {
	p.mu.Lock()
	p.calls[endpoint]++
	p.mu.Unlock()
}

func (p *project) countUnavailable() {
	p.mu.Lock()
	p.unavailable++
	p.mu.Unlock()
}

// put stores a whole, replacing any account with its uid, and reports
// whether it replaced one. The caller holds p.mu.
func (p *project) put(a Account) (replaced bool) {
	p.seq++
	return p.store(a, p.seq)
}

// store is put with a given sequence (an update keeps the account's).
func (p *project) store(a Account, seq uint64) (replaced bool) {
	if old, ok := p.accounts[a.UID]; ok {
		p.unindex(&old.Account)
		replaced = true
	} else {
		p.sorted = nil
	}
	e := &entry{Account: a, seq: seq}
	p.accounts[a.UID] = e
	p.index(&e.Account)
	return replaced
}

// remove deletes the account with uid and reports whether there was one.
// The caller holds p.mu.
func (p *project) remove(uid string) bool {
	e, ok := p.accounts[uid]
	if !ok {
		return false
	}
	p.unindex(&e.Account)
	delete(p.accounts, uid)
	p.sorted = nil
	return true
}

func (p *project) index(a *Account) {
	if a.Email != "" {
		addTo(p.byEmail, a.Email, a.UID)
	}
	if a.PhoneNumber != "" {
		addTo(p.byPhone, a.PhoneNumber, a.UID)
	}
	for _, id := range a.identities() {
		addTo(p.byIdentity, id, a.UID)
	}
}

func (p *project) unindex(a *Account) {
	if a.Email != "" {
		removeFrom(p.byEmail, a.Email, a.UID)
	}
	if a.PhoneNumber != "" {
		removeFrom(p.byPhone, a.PhoneNumber, a.UID)
	}
	for _, id := range a.identities() {
		removeFrom(p.byIdentity, id, a.UID)
	}
}

func addTo[K comparable](m map[K]set, k K, uid string) {
	s, ok := m[k]
	if !ok {
		s = set{}
		m[k] = s
	}
	s[uid] = struct{}{}
}

func removeFrom[K comparable](m map[K]set, k K, uid string) {
	if s, ok := m[k]; ok {
		delete(s, uid)
		if len(s) == 0 {
			delete(m, k)
		}
	}
}

// holders returns the accounts in s, oldest first. The caller holds p.mu.
func (p *project) holders(s set) []*entry {
	out := make([]*entry, 0, len(s))
	for uid := range s {
		out = append(out, p.accounts[uid])
	}
	slices.SortFunc(out, func(a, b *entry) int { return cmp.Compare(a.seq, b.seq) })
	return out
}

// heldByOther reports whether an account other than uid is in s.
func heldByOther(s set, uid string) bool {
	for other := range s {
		if other != uid {
			return true
		}
	}
	return false
}

// sortedUIDs returns every uid in ascending order. The caller holds p.mu
// and must not modify the result.
func (p *project) sortedUIDs() []string {
	if p.sorted == nil {
		p.sorted = slices.Sorted(maps.Keys(p.accounts))
	}
	return p.sorted
}

func (p *project) stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := Stats{
		Accounts:     len(p.accounts),
		Replacements: p.replacements,
		ReplacedUIDs: slices.Clone(p.replaced),
		Calls:        maps.Clone(p.calls),
		Unavailable:  p.unavailable,
	}
	for email, s := range p.byEmail {
		if len(s) > 1 {
			st.DuplicateEmails = append(st.DuplicateEmails, email)
		}
	}
	for id, s := range p.byIdentity {
		if len(s) > 1 {
			st.DuplicateIdentities = append(st.DuplicateIdentities, id)
		}
	}
	slices.Sort(st.DuplicateEmails)
	slices.SortFunc(st.DuplicateIdentities, func(a, b Identity) int {
		return cmp.Or(cmp.Compare(a.ProviderID, b.ProviderID), cmp.Compare(a.RawID, b.RawID))
	})
	return st
}

// Stats returns the project's counts. A project never used has zero
// counts.
func (s *Server) Stats(projectID string) Stats {
	p := s.existing(projectID)
	if p == nil {
		return Stats{Calls: map[string]int{}}
	}
	return p.stats()
}

// Accounts returns a copy of the project's accounts, by uid.
func (s *Server) Accounts(projectID string) []Account {
	p := s.existing(projectID)
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Account, 0, len(p.accounts))
	for _, uid := range p.sortedUIDs() {
		out = append(out, p.accounts[uid].clone())
	}
	return out
}

// Insert adds a to the project without any of production's checks on
// email, phone number or identities, so a test can set up what production
// allows (a second account holding someone's email). The email is
// lower-cased; a zero CreatedAt becomes now. It returns ErrUIDExists when
// the uid is taken, and an error for an invalid uid or a "password" or
// "phone" provider (those are derived from Email, PasswordHash and
// PhoneNumber).
func (s *Server) Insert(projectID string, a Account) error {
	if !validUID(a.UID) {
		return fmt.Errorf("firebaseprod: insert: uid must be 1 to %d characters", maxUIDLen)
	}
	for _, pr := range a.Providers {
		if pr.ProviderID == providerPassword || pr.ProviderID == providerPhone {
			return fmt.Errorf("firebaseprod: insert %s: provider %q is derived, not linked", a.UID, pr.ProviderID)
		}
	}
	a = a.clone()
	a.Email = canonicalEmail(a.Email)
	if a.CreatedAt == 0 {
		a.CreatedAt = time.Now().UnixMilli()
	}
	p := s.project(projectID)
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.accounts[a.UID]; ok {
		return fmt.Errorf("insert %s: %w", a.UID, ErrUIDExists)
	}
	p.put(a)
	return nil
}

func canonicalEmail(email string) string { return strings.ToLower(email) }
