package iamauth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// ErrAccessDenied: no identity policy allows the action on the resource, or
// one explicitly denies it (Authorize).
var ErrAccessDenied = errors.New("access denied")

// policyKind is what a document is checked as.
type policyKind int

const (
	// identityPolicy: inline user/role policies, managed policies and
	// session policies. Resource is required, Principal forbidden.
	identityPolicy policyKind = iota
	// trustPolicy: a role's AssumeRolePolicyDocument. Principal is
	// required, Resource forbidden.
	trustPolicy
)

// policy is a parsed policy document, reduced to what evaluation needs.
type policy struct {
	Statements []statement
}

type statement struct {
	Sid                     string
	Deny                    bool // Effect Deny, else Allow
	Actions, NotActions     []string
	Resources, NotResources []string
	HasCondition            bool
}

// parsePolicy checks a policy document the way IAM's policy grammar does and
// returns it parsed. Errors are MalformedPolicyDocument with IAM's texts.
func parsePolicy(doc string, kind policyKind) (*policy, error) {
	dec := json.NewDecoder(strings.NewReader(doc))
	dec.UseNumber()
	var top map[string]json.RawMessage
	if err := dec.Decode(&top); err != nil || top == nil {
		return nil, malformedPolicy("Syntax errors in policy.")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, malformedPolicy("Syntax errors in policy.")
	}
	for k := range top {
		switch k {
		case "Version", "Id", "Statement":
		default:
			return nil, malformedPolicy("Syntax errors in policy.")
		}
	}
	if raw, ok := top["Version"]; ok {
		var v string
		if json.Unmarshal(raw, &v) != nil || (v != "2012-10-17" && v != "2008-10-17") {
			return nil, malformedPolicy("The policy failed legacy parsing")
		}
	}
	raw, ok := top["Statement"]
	if !ok {
		return nil, malformedPolicy("Syntax errors in policy.")
	}
	var list []json.RawMessage
	if raw = bytes.TrimSpace(raw); len(raw) > 0 && raw[0] == '{' {
		list = []json.RawMessage{raw}
	} else if json.Unmarshal(raw, &list) != nil || len(list) == 0 {
		return nil, malformedPolicy("Syntax errors in policy.")
	}
	p := &policy{}
	for _, r := range list {
		st, err := parseStatement(r, kind)
		if err != nil {
			return nil, err
		}
		p.Statements = append(p.Statements, st)
	}
	return p, nil
}

func parseStatement(raw json.RawMessage, kind policyKind) (statement, error) {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil || m == nil {
		return statement{}, malformedPolicy("Syntax errors in policy.")
	}
	var st statement
	for k, v := range m {
		var err error
		switch k {
		case "Sid":
			if json.Unmarshal(v, &st.Sid) != nil {
				err = malformedPolicy("Syntax errors in policy.")
			}
		case "Effect":
			var e string
			_ = json.Unmarshal(v, &e)
			switch e {
			case "Allow":
			case "Deny":
				st.Deny = true
			default:
				err = malformedPolicy("Invalid effect: %s", strings.Trim(string(v), `"`))
			}
		case "Action":
			st.Actions, err = stringOrList(v)
		case "NotAction":
			st.NotActions, err = stringOrList(v)
		case "Resource":
			st.Resources, err = stringOrList(v)
		case "NotResource":
			st.NotResources, err = stringOrList(v)
		case "Principal", "NotPrincipal":
			if kind == identityPolicy {
				err = malformedPolicy("Policy document should not specify a principal.")
			} else if !validPrincipal(v) {
				err = malformedPolicy("Invalid principal in policy")
			}
		case "Condition":
			var c map[string]map[string]json.RawMessage
			if json.Unmarshal(v, &c) != nil {
				err = malformedPolicy("Syntax errors in policy.")
			}
			st.HasCondition = true
		default:
			err = malformedPolicy("Syntax errors in policy.")
		}
		if err != nil {
			return statement{}, err
		}
	}
	_, hasEffect := m["Effect"]
	_, hasAction := m["Action"]
	_, hasNotAction := m["NotAction"]
	_, hasResource := m["Resource"]
	_, hasNotResource := m["NotResource"]
	_, hasPrincipal := m["Principal"]
	_, hasNotPrincipal := m["NotPrincipal"]
	switch {
	case !hasEffect:
		return statement{}, malformedPolicy("Missing required field Effect")
	case hasAction == hasNotAction:
		if hasAction {
			return statement{}, malformedPolicy("Syntax errors in policy.")
		}
		return statement{}, malformedPolicy("Policy statement must contain actions.")
	case hasResource && hasNotResource:
		return statement{}, malformedPolicy("Syntax errors in policy.")
	case kind == identityPolicy && !hasResource && !hasNotResource:
		return statement{}, malformedPolicy("Policy statement must contain resources.")
	case kind == trustPolicy && (hasResource || hasNotResource):
		return statement{}, malformedPolicy("Has prohibited field Resource")
	case kind == trustPolicy && !hasPrincipal && !hasNotPrincipal:
		return statement{}, malformedPolicy("Missing required field Principal")
	}
	for _, a := range append(st.Actions, st.NotActions...) {
		if a != "*" && !validAction(a) {
			return statement{}, malformedPolicy("Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc.")
		}
	}
	for _, r := range append(st.Resources, st.NotResources...) {
		if r != "*" && !strings.HasPrefix(r, "arn:") {
			return statement{}, malformedPolicy("Resource %s must be in ARN format or \"*\".", r)
		}
	}
	return st, nil
}

// validAction accepts vendor:action patterns (rds-db:connect, rds-db:*).
func validAction(a string) bool {
	vendor, name, ok := strings.Cut(a, ":")
	return ok && vendor != "" && name != "" && !strings.ContainsAny(vendor, " *?")
}

// stringOrList reads a policy element that is a string or a non-empty list
// of strings.
func stringOrList(raw json.RawMessage) ([]string, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if s == "" {
			return nil, malformedPolicy("Syntax errors in policy.")
		}
		return []string{s}, nil
	}
	var list []string
	if json.Unmarshal(raw, &list) != nil || len(list) == 0 {
		return nil, malformedPolicy("Syntax errors in policy.")
	}
	for _, s := range list {
		if s == "" {
			return nil, malformedPolicy("Syntax errors in policy.")
		}
	}
	return list, nil
}

// validPrincipal accepts "*" or an object whose values are strings or lists
// of strings ({"AWS": …}, {"Service": …}, {"Federated": …}).
func validPrincipal(raw json.RawMessage) bool {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s == "*"
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil || len(m) == 0 {
		return false
	}
	for _, v := range m {
		if _, err := stringOrList(v); err != nil {
			return false
		}
	}
	return true
}

// decision is the outcome of evaluating a set of policies.
type decision int

const (
	implicitDeny decision = iota
	allowed
	explicitDeny
)

// namedPolicy is a policy together with the name Authorize reports.
type namedPolicy struct {
	Name string // "inline policy p of …" or the managed policy ARN
	Doc  string
}

// evaluate applies AWS's identity-policy logic to one request: an explicit
// Deny wins, else any Allow allows, else the request is implicitly denied.
// Conditions are not evaluated: a statement with a Condition block never
// allows, and always denies when its Action and Resource match (the safe
// side). Policy variables (${aws:username}…) are not substituted; a Deny
// whose resource uses one is likewise taken to match. It returns the policy
// that decided.
func evaluate(policies []namedPolicy, action, resource string) (decision, string) {
	result, by := implicitDeny, ""
	for _, np := range policies {
		p, err := parsePolicy(np.Doc, identityPolicy)
		if err != nil {
			continue // stored documents were validated; an unparseable one grants nothing
		}
		for _, st := range p.Statements {
			if !st.matchesAction(action) {
				continue
			}
			if st.Deny {
				if st.matchesResource(resource, true) {
					return explicitDeny, np.Name
				}
				continue
			}
			if !st.HasCondition && result == implicitDeny && st.matchesResource(resource, false) {
				result, by = allowed, np.Name
			}
		}
	}
	return result, by
}

func (st statement) matchesAction(action string) bool {
	action = strings.ToLower(action)
	if st.NotActions != nil {
		return !anyMatch(st.NotActions, action, true, false)
	}
	return anyMatch(st.Actions, action, true, false)
}

// matchesResource matches resource against Resource (or NotResource).
// For Deny statements (deny true) a pattern holding a policy variable
// matches anything.
func (st statement) matchesResource(resource string, deny bool) bool {
	if st.NotResources != nil {
		if deny {
			// Safe side: a NotResource exclusion with a variable cannot
			// be trusted to exclude, so it excludes nothing.
			for _, p := range st.NotResources {
				if strings.Contains(p, "${") {
					return true
				}
			}
		}
		return !anyMatch(st.NotResources, resource, false, false)
	}
	return anyMatch(st.Resources, resource, false, deny)
}

func anyMatch(patterns []string, s string, fold, variablesMatch bool) bool {
	for _, p := range patterns {
		if variablesMatch && strings.Contains(p, "${") {
			return true
		}
		if fold {
			p = strings.ToLower(p)
		}
		if wildcardMatch(p, s) {
			return true
		}
	}
	return false
}

// wildcardMatch reports whether s matches pattern, where '*' matches any
// run of characters (including none, and including ':' and '/') and '?'
// exactly one character, as in IAM's ARN and action matching.
func wildcardMatch(pattern, s string) bool {
	px, sx := 0, 0
	starPx, starSx := -1, 0
	for sx < len(s) {
		if px < len(pattern) {
			switch c := pattern[px]; c {
			case '*':
				starPx, starSx = px, sx
				px++
				continue
			case '?':
				_, n := utf8.DecodeRuneInString(s[sx:])
				px++
				sx += n
				continue
			default:
				if c == s[sx] {
					px++
					sx++
					continue
				}
			}
		}
		if starPx < 0 {
			return false
		}
		// Let the last '*' absorb one more character and retry.
		_, n := utf8.DecodeRuneInString(s[starSx:])
		starSx += n
		px, sx = starPx+1, starSx
	}
	for px < len(pattern) && pattern[px] == '*' {
		px++
	}
	return px == len(pattern)
}

// Authorize decides whether id may perform action on resource under the
// identity policies of its principal (for --enforce-iam): the inline and
// attached managed policies of the IAM user, or of the role behind an
// assumed-role session. It returns nil when some statement allows the
// request and none denies it; otherwise an *Error of kind ErrAccessDenied
// whose Reason, written for the log, names the principal and, for an
// explicit deny, the policy. The account root (including test/test and the
// 12-digit LocalStack keys) is always allowed.
//
// Evaluation follows AWS for identity policies: Action and NotAction,
// Resource and NotResource, string or list values, '*' and '?' wildcards
// (actions case-insensitive, resources case-sensitive); explicit Deny wins
// over Allow. Not modelled: Condition blocks (a statement with one never
// allows and always denies when its Action and Resource match), policy
// variables (not substituted; such a Deny resource matches everything),
// permissions boundaries, session policies, resource-based policies, SCPs.
func (d *Directory) Authorize(id Identity, action, resource string) error {
	p := parsePrincipal(id.Principal)
	if p.Kind == principalRoot {
		return nil
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	a := d.accounts[p.Account]
	var (
		policies []namedPolicy
		owner    string
	)
	switch p.Kind {
	case principalUser:
		var u *user
		if a != nil {
			u = a.Users[strings.ToLower(p.Name)]
		}
		if u == nil || u.Path != p.Path {
			return denied("principal %s: the IAM user no longer exists", id.Principal)
		}
		owner = u.arn(p.Account)
		policies = d.policiesOf(a, owner, u.Inline, u.Attached)
	case principalAssumedRole:
		var r *role
		if a != nil {
			r = a.Roles[strings.ToLower(p.Name)]
		}
		if r == nil {
			return denied("principal %s: role %s does not exist, so no policy can allow %s on %s", id.Principal, p.Name, action, resource)
		}
		owner = r.arn(p.Account)
		policies = d.policiesOf(a, owner, r.Inline, r.Attached)
	default:
		return denied("principal %q is not an IAM user, root or assumed-role session", id.Principal)
	}
	switch dec, by := evaluate(policies, action, resource); dec {
	case allowed:
		return nil
	case explicitDeny:
		return denied("%s of %s explicitly denies %s on %s", by, owner, action, resource)
	}
	who := owner
	if p.Kind == principalAssumedRole {
		who = owner + " (session " + id.Principal + ")"
	}
	return denied("no identity policy of %s allows %s on %s", who, action, resource)
}

// policiesOf lists the inline and attached policy documents of a user or
// role; the caller holds d.mu.
func (d *Directory) policiesOf(a *account, owner string, inline []inlinePolicy, attached []string) []namedPolicy {
	out := make([]namedPolicy, 0, len(inline)+len(attached))
	for _, ip := range inline {
		out = append(out, namedPolicy{Name: "inline policy " + ip.Name, Doc: ip.Document})
	}
	for _, arn := range attached {
		if mp := d.managed(arn); mp != nil {
			out = append(out, namedPolicy{Name: "policy " + arn, Doc: mp.Document})
		}
	}
	return out
}

func denied(format string, args ...any) error {
	return &Error{Kind: ErrAccessDenied, Reason: fmt.Sprintf(format, args...)}
}
