package api

import (
	"embed"
	"encoding/json"
	"fmt"
)

//go:embed model/*.json
var modelFiles embed.FS

// Model is the subset of an AWS service model rdslocal needs: metadata and
// the input shapes of the operations it implements.
type Model struct {
	Metadata   Metadata             `json:"metadata"`
	Operations map[string]Operation `json:"operations"`
	Shapes     map[string]*Shape    `json:"shapes"`
}

// Metadata is the service model's metadata block.
type Metadata struct {
	Protocol       string `json:"protocol"`
	APIVersion     string `json:"apiVersion"`
	SigningName    string `json:"signingName"`
	TargetPrefix   string `json:"targetPrefix"`
	XMLNamespace   string `json:"xmlNamespace"`
	EndpointPrefix string `json:"endpointPrefix"`
}

// Operation names an operation's input shape ("" when it takes none).
type Operation struct {
	Input string `json:"input"`
}

// Shape is one shape of the model.
type Shape struct {
	Type     string               `json:"type"`
	Required []string             `json:"required"`
	Members  map[string]MemberRef `json:"members"`
	Member   *MemberRef           `json:"member"`
	Key      *MemberRef           `json:"key"`
	Value    *MemberRef           `json:"value"`
	Min      *float64             `json:"min"`
	Max      *float64             `json:"max"`
	Enum     []string             `json:"enum"`
	// Flattened lists have no member segment in the query protocol.
	Flattened bool `json:"flattened"`
	// Sensitive values are never echoed in error messages.
	Sensitive bool `json:"sensitive"`
}

// MemberRef points from a structure member or list item to its shape.
type MemberRef struct {
	Shape            string `json:"shape"`
	LocationName     string `json:"locationName"`
	IdempotencyToken bool   `json:"idempotencyToken"`
}

// LoadModel returns the embedded model of a service ("rds",
// "secretsmanager", "acm", "iam", "sts").
func LoadModel(service string) (*Model, error) {
	b, err := modelFiles.ReadFile("model/" + service + ".json")
	if err != nil {
		return nil, fmt.Errorf("no model for service %q", service)
	}
	m := new(Model)
	if err := json.Unmarshal(b, m); err != nil {
		return nil, fmt.Errorf("model %s: %w", service, err)
	}
	if m.Metadata.SigningName == "" {
		// botocore omits signingName when it equals the endpoint prefix.
		m.Metadata.SigningName = m.Metadata.EndpointPrefix
	}
	return m, nil
}

// MustLoadModel is LoadModel for package initialisation of built-in services.
func MustLoadModel(service string) *Model {
	m, err := LoadModel(service)
	if err != nil {
		panic(err)
	}
	return m
}

func (m *Model) input(op string) *Shape {
	o, ok := m.Operations[op]
	if !ok || o.Input == "" {
		return nil
	}
	return m.Shapes[o.Input]
}
