package secrets

import (
	"encoding/base64"
	"net/http"
	"regexp"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/rdslocal/rdslocal/api"
)

// validName is the character set of secret names.
var validName = regexp.MustCompile(`^[A-Za-z0-9/_+=.@-]+$`)

// tagInput is a Tag as a request carries it: both members are optional in
// the model.
type tagInput struct {
	Key   *string
	Value *string
}

func readTags(in []tagInput) ([]tag, error) {
	out := make([]tag, 0, len(in))
	for _, t := range in {
		if t.Key == nil {
			return nil, invalidParameter("You must specify a Key for each tag.")
		}
		v := ""
		if t.Value != nil {
			v = *t.Value
		}
		out = append(out, tag{Key: *t.Key, Value: v})
	}
	return out, nil
}

// mergeTags sets each of add on tags, replacing the value of a present key.
func mergeTags(tags, add []tag) []tag {
	for _, t := range add {
		if i := slices.IndexFunc(tags, func(x tag) bool { return x.Key == t.Key }); i >= 0 {
			tags[i].Value = t.Value
		} else {
			tags = append(tags, t)
		}
	}
	return tags
}

// readValue checks SecretString xor SecretBinary and decodes the binary
// (base64 in JSON).
func readValue(str, bin *string) (secretValue, error) {
	var v secretValue
	if str != nil && bin != nil {
		return v, errBothValues()
	}
	v.str = str
	if bin != nil {
		b, err := base64.StdEncoding.DecodeString(*bin)
		if err != nil {
			return v, api.SerializationException("Invalid base64 in 'secretBinary'")
		}
		// The gateway checks no blob lengths: SecretBinaryType is 1–65536 bytes.
		switch {
		case len(b) == 0:
			return v, api.NewError(http.StatusBadRequest, "ValidationException",
				"1 validation error detected: Value at 'secretBinary' failed to satisfy constraint: Member must have length greater than or equal to 1")
		case len(b) > 65536:
			return v, api.NewError(http.StatusBadRequest, "ValidationException",
				"1 validation error detected: Value at 'secretBinary' failed to satisfy constraint: Member must have length less than or equal to 65536")
		}
		v.bin = b
	}
	return v, nil
}

func versionID(token *string) string {
	if token != nil {
		return *token
	}
	return uuid.NewString()
}

// dedupe returns stages without repeats, in order.
func dedupe(stages []string) []string {
	var out []string
	for _, s := range stages {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

func epoch(t time.Time) *api.EpochTime { return api.Epoch(t) }

func epochPtr(t *time.Time) *api.EpochTime {
	if t == nil {
		return nil
	}
	return api.Epoch(*t)
}

func cloneStrings(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return slices.Clone(s)
}

// lookup resolves SecretId in the caller's account and region. The caller
// holds s.mu.
func (s *Store) lookup(c *api.Call, id string) (*secret, error) {
	r := s.region(c.Account, c.Region, c.Now)
	sec := r.find(c.Account, c.Region, id)
	if sec == nil {
		return nil, errSecretNotFound()
	}
	return sec, nil
}

// lookupLive is lookup refusing a secret scheduled for deletion.
func (s *Store) lookupLive(c *api.Call, id string) (*secret, error) {
	sec, err := s.lookup(c, id)
	if err != nil {
		return nil, err
	}
	if sec.deleted() {
		return nil, errMarkedForDeletion()
	}
	return sec, nil
}

// --- CreateSecret ---

type createSecretInput struct {
	Name                        string
	ClientRequestToken          *string
	Description                 *string
	KmsKeyId                    *string
	SecretString                *string
	SecretBinary                *string
	Tags                        []tagInput
	AddReplicaRegions           []map[string]any
	ForceOverwriteReplicaSecret *bool
	Type                        *string
}

// versionRefOutput is the output of CreateSecret and UpdateSecret.
type versionRefOutput struct {
	ARN       string `json:"ARN"`
	Name      string `json:"Name"`
	VersionId string `json:"VersionId,omitempty"`
}

func (s *Store) createSecret(c *api.Call) (any, error) {
	var in createSecretInput
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	if !validName.MatchString(in.Name) {
		return nil, invalidParameter("Invalid name. Must be a valid name containing alphanumeric characters, or any of the following: -/_+=.@!")
	}
	val, err := readValue(in.SecretString, in.SecretBinary)
	if err != nil {
		return nil, err
	}
	tags, err := readTags(in.Tags)
	if err != nil {
		return nil, err
	}
	if len(in.AddReplicaRegions) > 0 {
		return nil, invalidParameter("rdslocal does not replicate secrets: AddReplicaRegions is not supported.")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.region(c.Account, c.Region, c.Now)
	if old := r.secrets[in.Name]; old != nil {
		if old.deleted() {
			return nil, invalidRequest("You can't create this secret because a secret with this name is already scheduled for deletion.")
		}
		if in.ClientRequestToken != nil {
			tok := *in.ClientRequestToken
			if v := old.version(tok); v != nil {
				if !val.equal(v) {
					return nil, errVersionExists()
				}
				return versionRefOutput{ARN: old.ARN, Name: old.Name, VersionId: v.ID}, nil
			}
			if tok == old.CreateToken && !val.present() {
				return versionRefOutput{ARN: old.ARN, Name: old.Name}, nil
			}
		}
		return nil, newError(codeExists, "The operation failed because the secret %s already exists.", in.Name)
	}
	sec := &secret{
		ARN:         buildARN(c.Account, c.Region, in.Name),
		Name:        in.Name,
		Tags:        tags,
		Created:     c.Now,
		LastChanged: c.Now,
	}
	if in.Description != nil {
		sec.Description = *in.Description
	}
	if in.KmsKeyId != nil {
		sec.KmsKeyID = *in.KmsKeyId
	}
	if in.Type != nil {
		sec.Type = *in.Type
	}
	if in.ClientRequestToken != nil {
		sec.CreateToken = *in.ClientRequestToken
	}
	out := versionRefOutput{ARN: sec.ARN, Name: sec.Name}
	if val.present() {
		out.VersionId = sec.addVersion(versionID(in.ClientRequestToken), val, []string{StageCurrent}, c.Now).ID
	}
	r.add(sec)
	return out, nil
}

// --- GetSecretValue ---

type getSecretValueInput struct {
	SecretId     string
	VersionId    *string
	VersionStage *string
}

type secretValueOutput struct {
	ARN           string         `json:"ARN"`
	Name          string         `json:"Name"`
	VersionId     string         `json:"VersionId"`
	SecretString  *string        `json:"SecretString,omitempty"`
	SecretBinary  []byte         `json:"SecretBinary,omitempty"`
	VersionStages []string       `json:"VersionStages,omitempty"`
	CreatedDate   *api.EpochTime `json:"CreatedDate,omitempty"`
}

// readVersion finds the version GetSecretValue asks for and records the
// access. The caller holds s.mu.
func readVersion(sec *secret, versionID, stage *string, now time.Time) (secretValueOutput, error) {
	var v *version
	if versionID != nil {
		if v = sec.version(*versionID); v == nil {
			return secretValueOutput{}, errNoVersion(*versionID)
		}
		if stage != nil && !v.has(*stage) {
			return secretValueOutput{}, invalidRequest("You provided a VersionStage that is not associated to the provided VersionId.")
		}
	} else {
		label := StageCurrent
		if stage != nil {
			label = *stage
		}
		if v = sec.holder(label); v == nil {
			return secretValueOutput{}, errNoStage(label)
		}
	}
	sec.touch(v, now)
	out := secretValueOutput{
		ARN:           sec.ARN,
		Name:          sec.Name,
		VersionId:     v.ID,
		SecretString:  v.String,
		VersionStages: cloneStrings(v.Stages),
		CreatedDate:   epoch(v.Created),
	}
	if v.Binary != nil {
		out.SecretBinary = slices.Clone(v.Binary)
	}
	return out, nil
}

func (s *Store) getSecretValue(c *api.Call) (any, error) {
	var in getSecretValueInput
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, err := s.lookupLive(c, in.SecretId)
	if err != nil {
		return nil, err
	}
	return readVersion(sec, in.VersionId, in.VersionStage, c.Now)
}

// --- PutSecretValue ---

type putSecretValueInput struct {
	SecretId           string
	ClientRequestToken *string
	SecretString       *string
	SecretBinary       *string
	VersionStages      []string
	RotationToken      *string
}

type putSecretValueOutput struct {
	ARN           string   `json:"ARN"`
	Name          string   `json:"Name"`
	VersionId     string   `json:"VersionId"`
	VersionStages []string `json:"VersionStages,omitempty"`
}

func (s *Store) putSecretValue(c *api.Call) (any, error) {
	var in putSecretValueInput
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	val, err := readValue(in.SecretString, in.SecretBinary)
	if err != nil {
		return nil, err
	}
	if !val.present() {
		return nil, invalidRequest("You must provide either SecretString or SecretBinary.")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, err := s.lookupLive(c, in.SecretId)
	if err != nil {
		return nil, err
	}
	if in.ClientRequestToken != nil {
		if v := sec.version(*in.ClientRequestToken); v != nil {
			if !val.equal(v) {
				return nil, errVersionExists()
			}
			return putSecretValueOutput{ARN: sec.ARN, Name: sec.Name, VersionId: v.ID, VersionStages: cloneStrings(v.Stages)}, nil
		}
	}
	stages := dedupe(in.VersionStages)
	if stages == nil {
		stages = []string{StageCurrent}
	}
	v := sec.addVersion(versionID(in.ClientRequestToken), val, stages, c.Now)
	sec.LastChanged = c.Now
	return putSecretValueOutput{ARN: sec.ARN, Name: sec.Name, VersionId: v.ID, VersionStages: cloneStrings(v.Stages)}, nil
}

// --- UpdateSecret ---

type updateSecretInput struct {
	SecretId           string
	ClientRequestToken *string
	Description        *string
	KmsKeyId           *string
	SecretString       *string
	SecretBinary       *string
	Type               *string
}

func (s *Store) updateSecret(c *api.Call) (any, error) {
	var in updateSecretInput
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	val, err := readValue(in.SecretString, in.SecretBinary)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, err := s.lookupLive(c, in.SecretId)
	if err != nil {
		return nil, err
	}
	if val.present() && in.ClientRequestToken != nil && sec.version(*in.ClientRequestToken) != nil {
		return nil, errVersionExists()
	}
	if in.Description != nil {
		sec.Description = *in.Description
	}
	if in.KmsKeyId != nil {
		sec.KmsKeyID = *in.KmsKeyId
	}
	if in.Type != nil {
		sec.Type = *in.Type
	}
	out := versionRefOutput{ARN: sec.ARN, Name: sec.Name}
	if val.present() {
		out.VersionId = sec.addVersion(versionID(in.ClientRequestToken), val, []string{StageCurrent}, c.Now).ID
	}
	sec.LastChanged = c.Now
	return out, nil
}

// --- UpdateSecretVersionStage ---

type updateSecretVersionStageInput struct {
	SecretId            string
	VersionStage        string
	RemoveFromVersionId *string
	MoveToVersionId     *string
}

type secretRef struct {
	ARN  string `json:"ARN"`
	Name string `json:"Name"`
}

func (s *Store) updateSecretVersionStage(c *api.Call) (any, error) {
	var in updateSecretVersionStageInput
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, err := s.lookupLive(c, in.SecretId)
	if err != nil {
		return nil, err
	}
	label := in.VersionStage
	holder := sec.holder(label)
	var from *version
	if in.RemoveFromVersionId != nil {
		if from = sec.version(*in.RemoveFromVersionId); from == nil {
			return nil, errNoVersion(*in.RemoveFromVersionId)
		}
	}
	switch {
	case in.MoveToVersionId != nil:
		to := sec.version(*in.MoveToVersionId)
		if to == nil {
			return nil, errNoVersion(*in.MoveToVersionId)
		}
		if holder != nil && holder != to {
			if from == nil {
				return nil, invalidParameter("The parameter RemoveFromVersionId can't be empty. Staging label %s is currently attached to version %s, so you must explicitly reference that version in RemoveFromVersionId.", label, holder.ID)
			}
			if from != holder {
				return nil, invalidParameter("When you move staging label %s, if you specify RemoveFromVersionId, it must be set to the version that currently has the staging label %s.", label, label)
			}
		} else if from != nil && from != to && !from.has(label) {
			return nil, invalidParameter("The staging label %s is not attached to version %s.", label, from.ID)
		}
		sec.attach(label, to)
	case from != nil:
		if !from.has(label) {
			return nil, invalidParameter("The staging label %s is not attached to version %s.", label, from.ID)
		}
		if label == StageCurrent {
			return nil, invalidParameter("You can't remove the staging label %s from version %s without moving it to another version with MoveToVersionId.", label, from.ID)
		}
		from.removeStage(label)
	default:
		return nil, invalidParameter("You must specify MoveToVersionId, RemoveFromVersionId, or both.")
	}
	sec.prune()
	sec.LastChanged = c.Now
	return secretRef{ARN: sec.ARN, Name: sec.Name}, nil
}

// --- DescribeSecret ---

type secretIDInput struct {
	SecretId string
}

type describeSecretOutput struct {
	ARN                string              `json:"ARN"`
	Name               string              `json:"Name"`
	Description        string              `json:"Description,omitempty"`
	KmsKeyId           string              `json:"KmsKeyId,omitempty"`
	LastChangedDate    *api.EpochTime      `json:"LastChangedDate,omitempty"`
	LastAccessedDate   *api.EpochTime      `json:"LastAccessedDate,omitempty"`
	DeletedDate        *api.EpochTime      `json:"DeletedDate,omitempty"`
	Tags               []tag               `json:"Tags,omitempty"`
	VersionIdsToStages map[string][]string `json:"VersionIdsToStages,omitempty"`
	OwningService      string              `json:"OwningService,omitempty"`
	CreatedDate        *api.EpochTime      `json:"CreatedDate,omitempty"`
	Type               string              `json:"Type,omitempty"`
}

// versionsToStages maps the labelled versions to their labels.
func (sec *secret) versionsToStages() map[string][]string {
	m := map[string][]string{}
	for _, v := range sec.Versions {
		if len(v.Stages) > 0 {
			m[v.ID] = slices.Clone(v.Stages)
		}
	}
	return m
}

func (s *Store) describeSecret(c *api.Call) (any, error) {
	var in secretIDInput
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, err := s.lookup(c, in.SecretId)
	if err != nil {
		return nil, err
	}
	return describeSecretOutput{
		ARN:                sec.ARN,
		Name:               sec.Name,
		Description:        sec.Description,
		KmsKeyId:           sec.KmsKeyID,
		LastChangedDate:    epoch(sec.LastChanged),
		LastAccessedDate:   epochPtr(sec.LastAccessed),
		DeletedDate:        epochPtr(sec.DeletedAt),
		Tags:               slices.Clone(sec.Tags),
		VersionIdsToStages: sec.versionsToStages(),
		OwningService:      sec.OwningService,
		CreatedDate:        epoch(sec.Created),
		Type:               sec.Type,
	}, nil
}

// --- DeleteSecret ---

type deleteSecretInput struct {
	SecretId                   string
	RecoveryWindowInDays       *int64
	ForceDeleteWithoutRecovery *bool
}

type deleteSecretOutput struct {
	ARN          string         `json:"ARN"`
	Name         string         `json:"Name"`
	DeletionDate *api.EpochTime `json:"DeletionDate"`
}

func (s *Store) deleteSecret(c *api.Call) (any, error) {
	var in deleteSecretInput
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	force := in.ForceDeleteWithoutRecovery != nil && *in.ForceDeleteWithoutRecovery
	if w := in.RecoveryWindowInDays; w != nil && (*w < 7 || *w > 30) {
		return nil, invalidParameter("The RecoveryWindowInDays value must be between 7 and 30 days (inclusive).")
	}
	if in.RecoveryWindowInDays != nil && force {
		return nil, invalidParameter("You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays.")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.region(c.Account, c.Region, c.Now)
	sec := r.find(c.Account, c.Region, in.SecretId)
	if sec == nil {
		if !force {
			return nil, errSecretNotFound()
		}
		// Forcing the deletion of a missing secret succeeds.
		out := deleteSecretOutput{ARN: in.SecretId, Name: in.SecretId, DeletionDate: epoch(c.Now)}
		if a, ok := parseARN(in.SecretId); ok {
			out.Name = a.name
		} else {
			out.ARN = buildARN(c.Account, c.Region, in.SecretId)
		}
		return out, nil
	}
	if force {
		r.remove(sec.Name)
		return deleteSecretOutput{ARN: sec.ARN, Name: sec.Name, DeletionDate: epoch(c.Now)}, nil
	}
	if sec.deleted() {
		return nil, errMarkedForDeletion()
	}
	days := int64(30)
	if in.RecoveryWindowInDays != nil {
		days = *in.RecoveryWindowInDays
	}
	at, when := c.Now, c.Now.Add(time.Duration(days)*24*time.Hour)
	sec.DeletedAt, sec.DeletionDate = &at, &when
	return deleteSecretOutput{ARN: sec.ARN, Name: sec.Name, DeletionDate: epoch(when)}, nil
}

// --- RestoreSecret ---

func (s *Store) restoreSecret(c *api.Call) (any, error) {
	var in secretIDInput
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, err := s.lookup(c, in.SecretId)
	if err != nil {
		return nil, err
	}
	if sec.deleted() {
		sec.DeletedAt, sec.DeletionDate = nil, nil
		sec.LastChanged = c.Now
	}
	return secretRef{ARN: sec.ARN, Name: sec.Name}, nil
}

// --- TagResource / UntagResource ---

type tagResourceInput struct {
	SecretId string
	Tags     []tagInput
}

func (s *Store) tagResource(c *api.Call) (any, error) {
	var in tagResourceInput
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	tags, err := readTags(in.Tags)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, err := s.lookupLive(c, in.SecretId)
	if err != nil {
		return nil, err
	}
	sec.Tags = mergeTags(sec.Tags, tags)
	sec.LastChanged = c.Now
	return nil, nil
}

type untagResourceInput struct {
	SecretId string
	TagKeys  []string
}

func (s *Store) untagResource(c *api.Call) (any, error) {
	var in untagResourceInput
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, err := s.lookupLive(c, in.SecretId)
	if err != nil {
		return nil, err
	}
	sec.Tags = slices.DeleteFunc(sec.Tags, func(t tag) bool { return slices.Contains(in.TagKeys, t.Key) })
	sec.LastChanged = c.Now
	return nil, nil
}

// --- ListSecretVersionIds ---

type listSecretVersionIDsInput struct {
	SecretId          string
	IncludeDeprecated *bool
	MaxResults        *int
	NextToken         *string
}

type versionEntry struct {
	VersionId        string         `json:"VersionId"`
	VersionStages    []string       `json:"VersionStages,omitempty"`
	LastAccessedDate *api.EpochTime `json:"LastAccessedDate,omitempty"`
	CreatedDate      *api.EpochTime `json:"CreatedDate,omitempty"`
	KmsKeyIds        []string       `json:"KmsKeyIds,omitempty"`
}

type listSecretVersionIDsOutput struct {
	ARN       string         `json:"ARN"`
	Name      string         `json:"Name"`
	Versions  []versionEntry `json:"Versions"`
	NextToken string         `json:"NextToken,omitempty"`
}

func (s *Store) listSecretVersionIDs(c *api.Call) (any, error) {
	var in listSecretVersionIDsInput
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sec, err := s.lookup(c, in.SecretId)
	if err != nil {
		return nil, err
	}
	deprecated := in.IncludeDeprecated != nil && *in.IncludeDeprecated
	var all []*version
	for _, v := range sec.Versions {
		if deprecated || len(v.Stages) > 0 {
			all = append(all, v)
		}
	}
	fp := fingerprint("ListSecretVersionIds", c.Account, c.Region, sec.ARN, deprecated)
	page, next, err := paginate(all, in.NextToken, in.MaxResults, 100, fp)
	if err != nil {
		return nil, err
	}
	out := listSecretVersionIDsOutput{ARN: sec.ARN, Name: sec.Name, Versions: []versionEntry{}, NextToken: next}
	for _, v := range page {
		key := v.KmsKeyID
		if key == "" {
			key = "DefaultEncryptionKey"
		}
		out.Versions = append(out.Versions, versionEntry{
			VersionId:        v.ID,
			VersionStages:    cloneStrings(v.Stages),
			LastAccessedDate: epochPtr(v.LastAccessed),
			CreatedDate:      epoch(v.Created),
			KmsKeyIds:        []string{key},
		})
	}
	return out, nil
}
