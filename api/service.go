package api

import (
	"context"
	"encoding/json"
	"time"
)

// Call is one AWS API request as a handler sees it: who sent it, where, and
// its validated input.
type Call struct {
	Ctx       context.Context
	Service   string // signing name: rds, secretsmanager, acm, iam, sts
	Action    string
	Region    string
	Account   string // 12 digits
	AccessKey string // the caller's access key id ("" when unsigned)
	RequestID string
	Now       time.Time
	input     []byte // JSON of the validated input
}

// NewCall returns a Call whose Decode yields input (a JSON object).
func NewCall(ctx context.Context, input []byte) *Call {
	return &Call{Ctx: ctx, input: input, Now: time.Now().UTC()}
}

// Decode unmarshals the validated input into v, a pointer to a struct whose
// field names are the operation's member names.
func (c *Call) Decode(v any) error {
	if len(c.input) == 0 {
		return nil
	}
	if err := json.Unmarshal(c.input, v); err != nil {
		return InternalFailure("decoding input: " + err.Error())
	}
	return nil
}

// Handler runs one action. It returns the value to render inside the
// protocol's success envelope (nil for actions without output members) or an
// error; an *Error reaches the client as is, any other error as
// InternalFailure.
type Handler func(c *Call) (any, error)

// Service is an AWS service served by rdslocal.
type Service struct {
	Model    *Model
	Handlers map[string]Handler
	// State, when set, lets the server persist and reset the service's state.
	State Persister
	// StateKey names the saved snapshot; services sharing one State (IAM
	// and STS) share a key. Empty means the signing name.
	StateKey string
	// ReadOnly reports actions that never change state, so the server can
	// skip saving after them. Nil means: Describe*, List* and Get* are read-only.
	ReadOnly func(action string) bool
}

// Name is the service's signing name.
func (s *Service) Name() string { return s.Model.Metadata.SigningName }

// Key is the name the service's state is saved under.
func (s *Service) Key() string {
	if s.StateKey != "" {
		return s.StateKey
	}
	return s.Name()
}

// IsReadOnly reports whether action leaves the service's state unchanged.
func (s *Service) IsReadOnly(action string) bool {
	if s.ReadOnly != nil {
		return s.ReadOnly(action)
	}
	for _, p := range []string{"Describe", "List", "Get", "BatchGet"} {
		if len(action) > len(p) && action[:len(p)] == p {
			return true
		}
	}
	return false
}

// Persister is implemented by services whose state survives restarts.
// Snapshot must return a consistent copy of the whole state; Restore replaces
// the state with a snapshot; Reset clears it.
type Persister interface {
	Snapshot() ([]byte, error)
	Restore(data []byte) error
	Reset()
}
