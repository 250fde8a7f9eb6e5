package firebaseprod

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"
)

func decode(body []byte, v any) *apiError {
	if err := json.Unmarshal(body, v); err != nil {
		return badRequest("Invalid JSON payload received. " + err.Error())
	}
	return nil
}

// setPassword stores a salted SHA-256 of password: the stand-in's own
// hash, described by a HashConfig as an imported one would be.
func setPassword(a *Account, password string, now time.Time) {
	salt := make([]byte, 16)
	_, _ = rand.Read(salt) // never fails
	sum := sha256.Sum256(append(slices.Clone(salt), password...))
	a.PasswordHash = base64.RawURLEncoding.EncodeToString(sum[:])
	a.Salt = base64.RawURLEncoding.EncodeToString(salt)
	a.Hash = &HashConfig{Algorithm: "SHA256", Rounds: 1, PasswordHashOrder: "SALT_AND_PASSWORD"}
	a.PasswordUpdatedAt = now.UnixMilli()
	a.ValidSince = now.Unix()
}

type signUpRequest struct {
	LocalID       string `json:"localId"`
	Email         string `json:"email"`
	Password      string `json:"password"`
	DisplayName   string `json:"displayName"`
	PhotoURL      string `json:"photoUrl"`
	PhoneNumber   string `json:"phoneNumber"`
	EmailVerified bool   `json:"emailVerified"`
	Disabled      bool   `json:"disabled"`
}

type signUpResponse struct {
	Kind        string `json:"kind"`
	LocalID     string `json:"localId"`
	Email       string `json:"email,omitempty"`
	DisplayName string `json:"displayName,omitempty"`
}

// signUp is CreateUser: unlike importUsers it refuses a uid, an email or a
// phone number that any account holds.
func signUp(p *project, c call) (any, *apiError) {
	var req signUpRequest
	if err := decode(c.body, &req); err != nil {
		return nil, err
	}
	a := Account{
		UID:           req.LocalID,
		EmailVerified: req.EmailVerified,
		DisplayName:   req.DisplayName,
		Disabled:      req.Disabled,
		CreatedAt:     c.now.UnixMilli(),
	}
	switch {
	case req.LocalID != "" && !validUID(req.LocalID):
		return nil, badRequest("INVALID_LOCAL_ID")
	case req.Email != "" && !validEmail(req.Email):
		return nil, badRequest("INVALID_EMAIL")
	case req.PhoneNumber != "" && !validPhone(req.PhoneNumber):
		return nil, badRequest("INVALID_PHONE_NUMBER : Invalid format.")
	case req.PhotoURL != "" && !validPhotoURL(req.PhotoURL):
		return nil, badRequest("INVALID_PHOTO_URL")
	case req.Password != "" && len(req.Password) < minPasswordLen:
		return nil, badRequest(fmt.Sprintf("WEAK_PASSWORD : Password should be at least %d characters", minPasswordLen))
	}
	a.Email = canonicalEmail(req.Email)
	a.PhoneNumber = req.PhoneNumber
	a.PhotoURL = req.PhotoURL
	if req.Password != "" {
		setPassword(&a, req.Password, c.now)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if a.UID == "" {
		for a.UID == "" || p.accounts[a.UID] != nil {
			a.UID = rand.Text()
		}
	} else if p.accounts[a.UID] != nil {
		return nil, badRequest("DUPLICATE_LOCAL_ID")
	}
	if a.Email != "" && len(p.byEmail[a.Email]) > 0 {
		return nil, badRequest("EMAIL_EXISTS")
	}
	if a.PhoneNumber != "" && len(p.byPhone[a.PhoneNumber]) > 0 {
		return nil, badRequest("PHONE_NUMBER_EXISTS")
	}
	p.put(a)
	return signUpResponse{Kind: "identitytoolkit#SignupNewUserResponse", LocalID: a.UID, Email: a.Email, DisplayName: a.DisplayName}, nil
}

type lookupRequest struct {
	LocalID         []string   `json:"localId"`
	Email           []string   `json:"email"`
	PhoneNumber     []string   `json:"phoneNumber"`
	FederatedUserID []Identity `json:"federatedUserId"`
}

type usersResponse struct {
	Kind          string     `json:"kind"`
	Users         []wireUser `json:"users,omitempty"`
	NextPageToken string     `json:"nextPageToken,omitempty"`
}

// lookup answers every account matching any identifier: all the accounts
// that share an email, a phone number or a provider identity, oldest
// first, each once. With no match it answers no users field, which the SDK
// turns into USER_NOT_FOUND for GetUser and into NotFound for GetUsers.
func lookup(p *project, c call) (any, *apiError) {
	var req lookupRequest
	if err := decode(c.body, &req); err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	resp := usersResponse{Kind: "identitytoolkit#GetAccountInfoResponse"}
	seen := set{}
	add := func(es ...*entry) {
		for _, e := range es {
			if _, dup := seen[e.UID]; !dup {
				seen[e.UID] = struct{}{}
				resp.Users = append(resp.Users, toWire(&e.Account))
			}
		}
	}
	for _, uid := range req.LocalID {
		if e, ok := p.accounts[uid]; ok {
			add(e)
		}
	}
	for _, email := range req.Email {
		add(p.holders(p.byEmail[canonicalEmail(email)])...)
	}
	for _, phone := range req.PhoneNumber {
		add(p.holders(p.byPhone[phone])...)
	}
	for _, id := range req.FederatedUserID {
		add(p.holders(p.byIdentity[id])...)
	}
	return resp, nil
}

type updateRequest struct {
	LocalID              string        `json:"localId"`
	Email                *string       `json:"email"`
	EmailVerified        *bool         `json:"emailVerified"`
	DisplayName          *string       `json:"displayName"`
	PhotoURL             *string       `json:"photoUrl"`
	PhoneNumber          *string       `json:"phoneNumber"`
	Password             *string       `json:"password"`
	DisableUser          *bool         `json:"disableUser"`
	CustomAttributes     *string       `json:"customAttributes"`
	ValidSince           *flexInt      `json:"validSince"`
	DeleteAttribute      []string      `json:"deleteAttribute"`
	DeleteProvider       []string      `json:"deleteProvider"`
	LinkProviderUserInfo *wireProvider `json:"linkProviderUserInfo"`
}

type updateResponse struct {
	Kind             string         `json:"kind"`
	LocalID          string         `json:"localId"`
	Email            string         `json:"email,omitempty"`
	DisplayName      string         `json:"displayName,omitempty"`
	PhotoURL         string         `json:"photoUrl,omitempty"`
	EmailVerified    bool           `json:"emailVerified,omitempty"`
	ProviderUserInfo []wireProvider `json:"providerUserInfo,omitempty"`
}

// validateUpdate checks what needs no state.
func validateUpdate(req *updateRequest) *apiError {
	if req.LocalID == "" {
		return badRequest("MISSING_LOCAL_ID")
	}
	if req.CustomAttributes != nil {
		if problem, forbidden := checkClaims(*req.CustomAttributes); problem != claimsOK {
			return claimsError(problem, forbidden)
		}
	}
	switch {
	case req.Email != nil && !validEmail(*req.Email):
		return badRequest("INVALID_EMAIL")
	case req.PhoneNumber != nil && *req.PhoneNumber != "" && !validPhone(*req.PhoneNumber):
		return badRequest("INVALID_PHONE_NUMBER : Invalid format.")
	case req.PhotoURL != nil && *req.PhotoURL != "" && !validPhotoURL(*req.PhotoURL):
		return badRequest("INVALID_PHOTO_URL")
	case req.Password != nil && len(*req.Password) < minPasswordLen:
		return badRequest(fmt.Sprintf("WEAK_PASSWORD : Password should be at least %d characters", minPasswordLen))
	}
	if l := req.LinkProviderUserInfo; l != nil {
		switch {
		case l.ProviderID == "":
			return badRequest("MISSING_PROVIDER_ID")
		case l.RawID == "":
			return badRequest("MISSING_RAW_ID")
		case l.ProviderID == providerPassword || l.ProviderID == providerPhone || !validProviderID(l.ProviderID):
			return badRequest("INVALID_PROVIDER_ID : " + l.ProviderID)
		}
	}
	for _, attr := range req.DeleteAttribute {
		switch attr {
		case "DISPLAY_NAME", "PHOTO_URL", "EMAIL", "PASSWORD":
		default:
			return badRequest(fmt.Sprintf("INVALID_ARGUMENT : Invalid value at 'delete_attribute': %q", attr))
		}
	}
	return nil
}

// update is UpdateUser: it changes only what the request names and, unlike
// importUsers, refuses an email, a phone number or a provider identity that
// another account holds.
func update(p *project, c call) (any, *apiError) {
	var req updateRequest
	if err := decode(c.body, &req); err != nil {
		return nil, err
	}
	if err := validateUpdate(&req); err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	e, ok := p.accounts[req.LocalID]
	if !ok {
		return nil, badRequest("USER_NOT_FOUND")
	}
	a := e.Account.clone()
	if req.CustomAttributes != nil {
		a.CustomAttributes = *req.CustomAttributes
	}
	for _, attr := range req.DeleteAttribute {
		switch attr {
		case "DISPLAY_NAME":
			a.DisplayName = ""
		case "PHOTO_URL":
			a.PhotoURL = ""
		case "EMAIL":
			a.Email, a.EmailVerified = "", false
		case "PASSWORD":
			a.PasswordHash, a.Salt, a.Hash = "", "", nil
		}
	}
	for _, id := range req.DeleteProvider {
		switch id {
		case providerPhone:
			a.PhoneNumber = ""
		case providerPassword:
			a.Email, a.EmailVerified = "", false
			a.PasswordHash, a.Salt, a.Hash = "", "", nil
		default:
			a.Providers = slices.DeleteFunc(a.Providers, func(p Provider) bool { return p.ProviderID == id })
		}
	}
	if req.Email != nil {
		if email := canonicalEmail(*req.Email); email != a.Email {
			if heldByOther(p.byEmail[email], a.UID) {
				return nil, badRequest("EMAIL_EXISTS")
			}
			a.Email, a.EmailVerified = email, false
		}
	}
	if req.EmailVerified != nil {
		a.EmailVerified = *req.EmailVerified
	}
	if req.DisplayName != nil {
		a.DisplayName = *req.DisplayName
	}
	if req.PhotoURL != nil {
		a.PhotoURL = *req.PhotoURL
	}
	if req.PhoneNumber != nil && *req.PhoneNumber != a.PhoneNumber {
		if heldByOther(p.byPhone[*req.PhoneNumber], a.UID) {
			return nil, badRequest("PHONE_NUMBER_EXISTS")
		}
		a.PhoneNumber = *req.PhoneNumber
	}
	if req.Password != nil {
		setPassword(&a, *req.Password, c.now)
	}
	if req.DisableUser != nil {
		a.Disabled = *req.DisableUser
	}
	if req.ValidSince != nil {
		a.ValidSince = int64(*req.ValidSince)
	}
	if l := req.LinkProviderUserInfo; l != nil {
		if heldByOther(p.byIdentity[Identity{l.ProviderID, l.RawID}], a.UID) {
			return nil, badRequest("FEDERATED_USER_ID_ALREADY_LINKED")
		}
		// One identity per provider: linking replaces the provider's entry.
		if i := slices.IndexFunc(a.Providers, func(p Provider) bool { return p.ProviderID == l.ProviderID }); i >= 0 {
			a.Providers[i] = l.provider()
		} else {
			a.Providers = append(a.Providers, l.provider())
		}
	}
	p.store(a, e.seq)
	return updateResponse{Kind: "identitytoolkit#SetAccountInfoResponse", LocalID: a.UID, Email: a.Email,
		DisplayName: a.DisplayName, PhotoURL: a.PhotoURL, EmailVerified: a.EmailVerified, ProviderUserInfo: providerInfo(&a)}, nil
}

type deleteRequest struct {
	LocalID string `json:"localId"`
}

type kindResponse struct {
	Kind string `json:"kind"`
}

// deleteAccount is DeleteUser: USER_NOT_FOUND for a missing uid.
func deleteAccount(p *project, c call) (any, *apiError) {
	var req deleteRequest
	if err := decode(c.body, &req); err != nil {
		return nil, err
	}
	if req.LocalID == "" {
		return nil, badRequest("MISSING_LOCAL_ID")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.remove(req.LocalID) {
		return nil, badRequest("USER_NOT_FOUND")
	}
	return kindResponse{Kind: "identitytoolkit#DeleteAccountResponse"}, nil
}

type batchDeleteRequest struct {
	LocalIDs []string `json:"localIds"`
	Force    bool     `json:"force"`
}

type batchDeleteError struct {
	Index   int    `json:"index"`
	LocalID string `json:"localId,omitempty"`
	Message string `json:"message"`
}

type batchDeleteResponse struct {
	Errors []batchDeleteError `json:"errors,omitempty"`
}

// batchDelete is DeleteUsers: a missing uid counts as deleted; without
// force, an enabled account is refused at its index.
func batchDelete(p *project, c call) (any, *apiError) {
	var req batchDeleteRequest
	if err := decode(c.body, &req); err != nil {
		return nil, err
	}
	switch {
	case len(req.LocalIDs) == 0:
		return nil, badRequest("MISSING_LOCAL_ID")
	case len(req.LocalIDs) > MaxDeleteUIDs:
		return nil, badRequest(fmt.Sprintf("LOCAL_ID_LIST_EXCEEDS_LIMIT : at most %d uids per call, got %d", MaxDeleteUIDs, len(req.LocalIDs)))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var resp batchDeleteResponse
	for i, uid := range req.LocalIDs {
		e, ok := p.accounts[uid]
		switch {
		case !validUID(uid):
			resp.Errors = append(resp.Errors, batchDeleteError{Index: i, LocalID: uid, Message: "INVALID_LOCAL_ID"})
		case !ok:
		case !req.Force && !e.Disabled:
			resp.Errors = append(resp.Errors, batchDeleteError{Index: i, LocalID: uid, Message: "NOT_DISABLED : Disable the account before batch deletion."})
		default:
			p.remove(uid)
		}
	}
	return resp, nil
}

// batchGet is the Users iterator: accounts in uid order, maxResults (1 to
// MaxPageSize, default 20) at a time, with an opaque token for the next
// page when there is one.
func batchGet(p *project, c call) (any, *apiError) {
	size := defaultPageSize
	if v := c.query.Get("maxResults"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > MaxPageSize {
			return nil, badRequest(fmt.Sprintf("INVALID_ARGUMENT : maxResults must be between 1 and %d", MaxPageSize))
		}
		if n > 0 {
			size = n
		}
	}
	var after string
	if tok := c.query.Get("nextPageToken"); tok != "" {
		b, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil || len(b) == 0 {
			return nil, badRequest("INVALID_PAGE_SELECTION")
		}
		after = string(b)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	uids := p.sortedUIDs()
	start := 0
	if after != "" {
		i, found := slices.BinarySearch(uids, after)
		if found {
			i++
		}
		start = i
	}
	end := min(start+size, len(uids))
	resp := usersResponse{Kind: "identitytoolkit#DownloadAccountResponse"}
	for _, uid := range uids[start:end] {
		resp.Users = append(resp.Users, toWire(&p.accounts[uid].Account))
	}
	if end < len(uids) {
		resp.NextPageToken = base64.RawURLEncoding.EncodeToString([]byte(uids[end-1]))
	}
	return resp, nil
}
