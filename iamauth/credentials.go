package iamauth

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"
)

// DefaultAccount is the account the built-in test/test key belongs to, as in
// LocalStack.
const DefaultAccount = "000000000000"

// Credential is one AWS access key as the emulator knows it: a long-term IAM
// user key (SessionToken empty) or a temporary STS credential.
type Credential struct {
	AccessKeyID     string `json:"accessKeyId"`
	SecretAccessKey string `json:"secretAccessKey"`
	// SessionToken is set for temporary (STS) credentials; requests and
	// tokens signed with such a key must carry exactly this token.
	SessionToken string `json:"sessionToken,omitempty"`
	// Expires is when a temporary credential stops working; zero means never.
	Expires time.Time `json:"expires,omitzero"`
	// Principal is the ARN of the IAM user, root or assumed-role session the
	// key belongs to.
	Principal string `json:"principal"`
	// Account is the 12-digit AWS account id.
	Account string `json:"account"`
}

// Temporary reports whether c is a session (STS) credential.
func (c Credential) Temporary() bool { return c.SessionToken != "" }

// expired reports whether c has an expiry and it has passed at now.
func (c Credential) expired(now time.Time) bool {
	return !c.Expires.IsZero() && !now.Before(c.Expires)
}

// Identity is who a verified request or token was signed by.
type Identity struct {
	AccessKeyID string
	Principal   string // ARN of the user, root or assumed-role session
	Account     string
}

func (c Credential) identity() Identity {
	return Identity{AccessKeyID: c.AccessKeyID, Principal: c.Principal, Account: c.Account}
}

// CredentialLookup finds the credential for an access key id. Implementations
// must be safe for concurrent use; they are called on every request and every
// IAM-authenticated database login.
type CredentialLookup interface {
	LookupAccessKey(akid string) (Credential, bool)
}

// StaticCredentials is the built-in credential set, following the LocalStack
// convention so that clients configured for LocalStack work unchanged:
//
//   - access key "test" with secret "test" belongs to account 000000000000;
//   - an access key id of exactly 12 digits with secret "test" belongs to the
//     account of that number (e.g. AWS_ACCESS_KEY_ID=123456789012).
//
// Both resolve to the account's root principal, arn:aws:iam::<account>:root.
// The secret is still checked: a signature made with any other secret fails.
type StaticCredentials struct{}

// LookupAccessKey implements CredentialLookup.
func (StaticCredentials) LookupAccessKey(akid string) (Credential, bool) {
	account := ""
	switch {
	case akid == "test":
		account = DefaultAccount
	case isAccountID(akid):
		account = akid
	default:
		return Credential{}, false
	}
	return Credential{
		AccessKeyID:     akid,
		SecretAccessKey: "test",
		Principal:       "arn:aws:iam::" + account + ":root",
		Account:         account,
	}, true
}

func isAccountID(s string) bool {
	if len(s) != 12 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Chain looks an access key up in each CredentialLookup in turn and returns
// the first match; for example Chain{store, StaticCredentials{}}.
type Chain []CredentialLookup

// LookupAccessKey implements CredentialLookup.
func (ch Chain) LookupAccessKey(akid string) (Credential, bool) {
	for _, l := range ch {
		if l == nil {
			continue
		}
		if c, ok := l.LookupAccessKey(akid); ok {
			return c, true
		}
	}
	return Credential{}, false
}

// Store is a mutable, concurrency-safe set of credentials keyed by access key
// id: the IAM and STS front-ends add keys (CreateAccessKey, AssumeRole) and
// remove them (DeleteAccessKey). Its state marshals to JSON and back, so the
// server can persist it. The zero value is an empty store ready to use.
type Store struct {
	mu   sync.RWMutex
	keys map[string]Credential
}

// Put adds c, replacing any credential with the same access key id.
func (s *Store) Put(c Credential) error {
	if c.AccessKeyID == "" || c.SecretAccessKey == "" {
		return errors.New("iamauth: credential needs an access key id and a secret")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.keys == nil {
		s.keys = make(map[string]Credential)
	}
	s.keys[c.AccessKeyID] = c
	return nil
}

// Delete removes the credential for akid and reports whether there was one.
func (s *Store) Delete(akid string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.keys[akid]
	delete(s.keys, akid)
	return ok
}

// LookupAccessKey implements CredentialLookup.
func (s *Store) LookupAccessKey(akid string) (Credential, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	c, ok := s.keys[akid]
	return c, ok
}

// List returns every credential, sorted by access key id.
func (s *Store) List() []Credential {
	s.mu.RLock()
	out := make([]Credential, 0, len(s.keys))
	for _, c := range s.keys {
		out = append(out, c)
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].AccessKeyID < out[j].AccessKeyID })
	return out
}

// storeSnapshot is the persisted JSON form of a Store.
type storeSnapshot struct {
	Credentials []Credential `json:"credentials"`
}

// MarshalJSON snapshots the store as {"credentials":[…]}, sorted by access
// key id. The snapshot contains secrets; persist it accordingly.
func (s *Store) MarshalJSON() ([]byte, error) {
	return json.Marshal(storeSnapshot{Credentials: s.List()})
}

// UnmarshalJSON replaces the store's contents with a snapshot made by
// MarshalJSON. On error the store is left unchanged.
func (s *Store) UnmarshalJSON(data []byte) error {
	var snap storeSnapshot
	if err := json.Unmarshal(data, &snap); err != nil {
		return fmt.Errorf("iamauth: credential snapshot: %w", err)
	}
	keys := make(map[string]Credential, len(snap.Credentials))
	for _, c := range snap.Credentials {
		if c.AccessKeyID == "" || c.SecretAccessKey == "" {
			return errors.New("iamauth: credential snapshot: entry without access key id or secret")
		}
		if _, dup := keys[c.AccessKeyID]; dup {
			return fmt.Errorf("iamauth: credential snapshot: access key %s appears twice", c.AccessKeyID)
		}
		keys[c.AccessKeyID] = c
	}
	s.mu.Lock()
	s.keys = keys
	s.mu.Unlock()
	return nil
}
