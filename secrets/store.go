package secrets

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rdslocal/rdslocal/api"
)

// Staging labels Secrets Manager moves by itself.
const (
	StageCurrent  = "AWSCURRENT"
	StagePrevious = "AWSPREVIOUS"
	StagePending  = "AWSPENDING"
)

// maxVersions is how many versions a secret keeps before its oldest
// deprecated (unlabelled) versions are dropped, as Secrets Manager does.
const maxVersions = 100

// snapshotVersion is the format version of Snapshot's JSON.
const snapshotVersion = 1

// Store is the Secrets Manager state of every account and region. It is safe
// for concurrent use.
type Store struct {
	mu      sync.Mutex
	regions map[regionKey]*regionState
}

// New returns an empty store.
func New() *Store { return &Store{regions: map[regionKey]*regionState{}} }

type regionKey struct{ account, region string }

// regionState is the secrets of one account in one region.
type regionState struct {
	secrets map[string]*secret // by name
	byARN   map[string]*secret
}

func newRegionState() *regionState {
	return &regionState{secrets: map[string]*secret{}, byARN: map[string]*secret{}}
}

// secret is one secret. Its fields are exported for the snapshot's JSON only.
type secret struct {
	ARN           string     `json:"arn"`
	Name          string     `json:"name"`
	Description   string     `json:"description,omitempty"`
	KmsKeyID      string     `json:"kmsKeyId,omitempty"`
	Type          string     `json:"type,omitempty"`
	OwningService string     `json:"owningService,omitempty"`
	Tags          []tag      `json:"tags,omitempty"`
	Versions      []*version `json:"versions,omitempty"` // oldest first
	Created       time.Time  `json:"created"`
	LastChanged   time.Time  `json:"lastChanged"`
	LastAccessed  *time.Time `json:"lastAccessed,omitempty"` // a date (midnight UTC)
	// DeletedAt is when DeleteSecret scheduled the deletion, DeletionDate
	// when the secret goes for good; both are nil unless scheduled.
	DeletedAt    *time.Time `json:"deletedAt,omitempty"`
	DeletionDate *time.Time `json:"deletionDate,omitempty"`
	// CreateToken is CreateSecret's ClientRequestToken, so a retried create
	// of a secret without a value stays idempotent.
	CreateToken string `json:"createToken,omitempty"`
}

// version is one version of a secret.
type version struct {
	ID           string     `json:"id"`
	String       *string    `json:"string,omitempty"`
	Binary       []byte     `json:"binary,omitempty"`
	Stages       []string   `json:"stages,omitempty"`
	Created      time.Time  `json:"created"`
	LastAccessed *time.Time `json:"lastAccessed,omitempty"`
	KmsKeyID     string     `json:"kmsKeyId,omitempty"`
}

// tag is a secret's tag, rendered with AWS's member names.
type tag struct {
	Key   string `json:"Key"`
	Value string `json:"Value"`
}

// Service returns the Secrets Manager API for the gateway.
func (s *Store) Service() *api.Service {
	return &api.Service{
		Model: api.MustLoadModel("secretsmanager"),
		Handlers: map[string]api.Handler{
			"CreateSecret":             s.createSecret,
			"GetSecretValue":           s.getSecretValue,
			"BatchGetSecretValue":      s.batchGetSecretValue,
			"PutSecretValue":           s.putSecretValue,
			"UpdateSecret":             s.updateSecret,
			"UpdateSecretVersionStage": s.updateSecretVersionStage,
			"DescribeSecret":           s.describeSecret,
			"ListSecrets":              s.listSecrets,
			"ListSecretVersionIds":     s.listSecretVersionIDs,
			"DeleteSecret":             s.deleteSecret,
			"RestoreSecret":            s.restoreSecret,
			"TagResource":              s.tagResource,
			"UntagResource":            s.untagResource,
			"GetRandomPassword":        s.getRandomPassword,
		},
		State: s,
	}
}

// region returns the state of (account, region), creating it, after purging
// the secrets whose recovery window ended before now. The caller holds s.mu.
func (s *Store) region(account, region string, now time.Time) *regionState {
	k := regionKey{account, region}
	r := s.regions[k]
	if r == nil {
		r = newRegionState()
		s.regions[k] = r
	}
	r.purge(now)
	return r
}

func (r *regionState) purge(now time.Time) {
	for name, sec := range r.secrets {
		if sec.DeletionDate != nil && !now.Before(*sec.DeletionDate) {
			r.remove(name)
		}
	}
}

func (r *regionState) add(sec *secret) {
	r.secrets[sec.Name] = sec
	r.byARN[sec.ARN] = sec
}

func (r *regionState) remove(name string) {
	if sec := r.secrets[name]; sec != nil {
		delete(r.byARN, sec.ARN)
		delete(r.secrets, name)
	}
}

// find resolves a SecretId: a name, a full ARN, or a partial ARN (the ARN
// without the "-xxxxxx" suffix) of this account and region.
func (r *regionState) find(account, region, id string) *secret {
	if !strings.HasPrefix(id, "arn:") {
		return r.secrets[id]
	}
	if sec := r.byARN[id]; sec != nil {
		return sec
	}
	a, ok := parseARN(id)
	if !ok || a.account != account || a.region != region {
		return nil
	}
	return r.secrets[a.name]
}

// secretARN is the parts of a Secrets Manager ARN.
type secretARN struct {
	partition, region, account, name string // name may still carry the suffix
}

// parseARN splits arn:<partition>:secretsmanager:<region>:<account>:secret:<rest>.
func parseARN(s string) (secretARN, bool) {
	p := strings.SplitN(s, ":", 7)
	if len(p) != 7 || p[0] != "arn" || p[2] != "secretsmanager" || p[5] != "secret" || p[6] == "" {
		return secretARN{}, false
	}
	return secretARN{partition: p[1], region: p[3], account: p[4], name: p[6]}, true
}

// partition returns the ARN partition of region.
func partition(region string) string {
	switch {
	case strings.HasPrefix(region, "cn-"):
		return "aws-cn"
	case strings.HasPrefix(region, "us-gov-"):
		return "aws-us-gov"
	case strings.HasPrefix(region, "us-iso-"):
		return "aws-iso"
	case strings.HasPrefix(region, "us-isob-"):
		return "aws-iso-b"
	}
	return "aws"
}

func buildARN(account, region, name string) string {
	return fmt.Sprintf("arn:%s:secretsmanager:%s:%s:secret:%s-%s", partition(region), region, account, name, randomString(6, alnum))
}

func (sec *secret) deleted() bool { return sec.DeletedAt != nil }

// version returns the version with id, or nil.
func (sec *secret) version(id string) *version {
	for _, v := range sec.Versions {
		if v.ID == id {
			return v
		}
	}
	return nil
}

// holder returns the version carrying label, or nil.
func (sec *secret) holder(label string) *version {
	for _, v := range sec.Versions {
		if v.has(label) {
			return v
		}
	}
	return nil
}

func (v *version) has(label string) bool { return slices.Contains(v.Stages, label) }

func (v *version) removeStage(label string) {
	v.Stages = slices.DeleteFunc(v.Stages, func(s string) bool { return s == label })
}

// attach moves label to v. Moving AWSCURRENT gives AWSPREVIOUS to the version
// that lost AWSCURRENT.
func (sec *secret) attach(label string, v *version) {
	old := sec.holder(label)
	if old == v {
		return
	}
	if old != nil {
		old.removeStage(label)
	}
	v.Stages = append(v.Stages, label)
	if label == StageCurrent && old != nil {
		sec.attach(StagePrevious, old)
	}
}

// addVersion appends a new version holding val with the given labels.
func (sec *secret) addVersion(id string, val secretValue, stages []string, now time.Time) *version {
	v := &version{ID: id, String: val.str, Binary: val.bin, Created: now, KmsKeyID: sec.KmsKeyID}
	sec.Versions = append(sec.Versions, v)
	for _, st := range stages {
		sec.attach(st, v)
	}
	sec.prune()
	return v
}

// prune drops the oldest deprecated versions while the secret has more than
// maxVersions.
func (sec *secret) prune() {
	for len(sec.Versions) > maxVersions {
		i := slices.IndexFunc(sec.Versions, func(v *version) bool { return len(v.Stages) == 0 })
		if i < 0 {
			return
		}
		sec.Versions = slices.Delete(sec.Versions, i, i+1)
	}
}

// touch records an access to v (Secrets Manager keeps dates, not times).
func (sec *secret) touch(v *version, now time.Time) {
	day := now.UTC().Truncate(24 * time.Hour)
	sec.LastAccessed = &day
	d := day
	v.LastAccessed = &d
}

// secretValue is a SecretString or a SecretBinary.
type secretValue struct {
	str *string
	bin []byte
}

func (v secretValue) present() bool { return v.str != nil || v.bin != nil }

func (v secretValue) equal(ver *version) bool {
	if (v.str == nil) != (ver.String == nil) || (v.bin == nil) != (ver.Binary == nil) {
		return false
	}
	if v.str != nil && *v.str != *ver.String {
		return false
	}
	return bytes.Equal(v.bin, ver.Binary)
}

// CurrentValue returns the SecretString of the AWSCURRENT version of a
// secret, for the proxy data plane. secretID is a full ARN (what RDS proxies
// store in Auth.SecretArn), a partial ARN or a name; an ARN names its own
// account and region, a name is looked up in account and region. The error is
// an *api.Error carrying Secrets Manager's code (ResourceNotFoundException,
// InvalidRequestException for a secret scheduled for deletion or one whose
// current value is binary). A read counts as an access (LastAccessedDate).
func (s *Store) CurrentValue(account, region, secretID string) (string, error) {
	if a, ok := parseARN(secretID); ok {
		account, region = a.account, a.region
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now().UTC()
	r := s.regions[regionKey{account, region}]
	if r == nil {
		return "", errSecretNotFound()
	}
	r.purge(now)
	sec := r.find(account, region, secretID)
	if sec == nil {
		return "", errSecretNotFound()
	}
	if sec.deleted() {
		return "", errMarkedForDeletion()
	}
	v := sec.holder(StageCurrent)
	if v == nil {
		return "", errNoStage(StageCurrent)
	}
	if v.String == nil {
		return "", invalidRequest("The AWSCURRENT version of secret %s holds a SecretBinary; database credentials must be a SecretString.", sec.Name)
	}
	sec.touch(v, now)
	return *v.String, nil
}

// ParseCredentials reads the database credentials RDS Proxy expects in a
// secret: a JSON object with string members "username" and "password" (other
// members, such as engine, host, port and dbname, are ignored).
func ParseCredentials(secretString string) (username, password string, err error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(secretString), &m); err != nil {
		return "", "", errors.New("secret is not a JSON object with username and password")
	}
	get := func(key string) (string, error) {
		raw, ok := m[key]
		if !ok {
			return "", fmt.Errorf("secret has no %q member", key)
		}
		var v string
		if err := json.Unmarshal(raw, &v); err != nil {
			return "", fmt.Errorf("secret member %q is not a string", key)
		}
		if v == "" {
			return "", fmt.Errorf("secret member %q is empty", key)
		}
		return v, nil
	}
	if username, err = get("username"); err != nil {
		return "", "", err
	}
	if password, err = get("password"); err != nil {
		return "", "", err
	}
	return username, password, nil
}

// snapshot is Snapshot's JSON.
type snapshot struct {
	Version int              `json:"version"`
	Regions []snapshotRegion `json:"regions"`
}

type snapshotRegion struct {
	Account string    `json:"account"`
	Region  string    `json:"region"`
	Secrets []*secret `json:"secrets"`
}

// Snapshot returns the whole state as JSON, secret values included.
func (s *Store) Snapshot() ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap := snapshot{Version: snapshotVersion, Regions: []snapshotRegion{}}
	for k, r := range s.regions {
		if len(r.secrets) == 0 {
			continue
		}
		sr := snapshotRegion{Account: k.account, Region: k.region}
		for _, sec := range r.secrets {
			sr.Secrets = append(sr.Secrets, sec)
		}
		sort.Slice(sr.Secrets, func(i, j int) bool { return sr.Secrets[i].Name < sr.Secrets[j].Name })
		snap.Regions = append(snap.Regions, sr)
	}
	sort.Slice(snap.Regions, func(i, j int) bool {
		a, b := snap.Regions[i], snap.Regions[j]
		if a.Account != b.Account {
			return a.Account < b.Account
		}
		return a.Region < b.Region
	})
	return json.Marshal(snap)
}

// Restore replaces the whole state with a snapshot taken by Snapshot.
func (s *Store) Restore(data []byte) error {
	var snap snapshot
	if err := json.Unmarshal(data, &snap); err != nil {
		return fmt.Errorf("secrets snapshot: %w", err)
	}
	if snap.Version != snapshotVersion {
		return fmt.Errorf("secrets snapshot: unsupported format version %d", snap.Version)
	}
	regions := map[regionKey]*regionState{}
	for _, sr := range snap.Regions {
		k := regionKey{sr.Account, sr.Region}
		r := regions[k]
		if r == nil {
			r = newRegionState()
			regions[k] = r
		}
		for _, sec := range sr.Secrets {
			if sec == nil || sec.Name == "" || sec.ARN == "" {
				return fmt.Errorf("secrets snapshot: a secret of %s/%s has no name or ARN", sr.Account, sr.Region)
			}
			if r.secrets[sec.Name] != nil {
				return fmt.Errorf("secrets snapshot: secret %q appears twice in %s/%s", sec.Name, sr.Account, sr.Region)
			}
			sec.Versions = slices.DeleteFunc(sec.Versions, func(v *version) bool { return v == nil })
			r.add(sec)
		}
	}
	s.mu.Lock()
	s.regions = regions
	s.mu.Unlock()
	return nil
}

// Reset forgets every secret.
func (s *Store) Reset() {
	s.mu.Lock()
	s.regions = map[regionKey]*regionState{}
	s.mu.Unlock()
}
