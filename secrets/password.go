package secrets

import (
	"crypto/rand"
	"encoding/binary"
	"strings"

	"github.com/rdslocal/rdslocal/api"
)

// Character classes of GetRandomPassword.
const (
	lowercase   = "abcdefghijklmnopqrstuvwxyz"
	uppercase   = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	digits      = "0123456789"
	punctuation = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
	alnum       = lowercase + uppercase + digits
)

// randIndex returns a uniform random integer in [0, n) from crypto/rand.
func randIndex(n int) int {
	limit := ^uint32(0) - ^uint32(0)%uint32(n) // reject the biased tail
	var b [4]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			panic("crypto/rand: " + err.Error()) // never fails on supported platforms
		}
		if v := binary.LittleEndian.Uint32(b[:]); v < limit {
			return int(v % uint32(n))
		}
	}
}

// randomString returns n characters drawn uniformly from set (ASCII).
func randomString(n int, set string) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = set[randIndex(len(set))]
	}
	return string(b)
}

type getRandomPasswordInput struct {
	PasswordLength          *int64
	ExcludeCharacters       *string
	ExcludeNumbers          *bool
	ExcludePunctuation      *bool
	ExcludeUppercase        *bool
	ExcludeLowercase        *bool
	IncludeSpace            *bool
	RequireEachIncludedType *bool
}

type getRandomPasswordOutput struct {
	RandomPassword string `json:"RandomPassword"`
}

func isSet(b *bool) bool { return b != nil && *b }

// without returns the characters of set that are not in exclude.
func without(set, exclude string) string {
	return strings.Map(func(r rune) rune {
		if strings.ContainsRune(exclude, r) {
			return -1
		}
		return r
	}, set)
}

func (s *Store) getRandomPassword(c *api.Call) (any, error) {
	var in getRandomPasswordInput
	if err := c.Decode(&in); err != nil {
		return nil, err
	}
	length := 32
	if in.PasswordLength != nil {
		length = int(*in.PasswordLength) // the model bounds it to 1–4096
	}
	exclude := deref(in.ExcludeCharacters)
	// Each class that is included and not emptied by ExcludeCharacters must
	// appear at least once when RequireEachIncludedType (the default).
	var required []string
	for _, cl := range []struct {
		chars    string
		excluded bool
	}{
		{lowercase, isSet(in.ExcludeLowercase)},
		{uppercase, isSet(in.ExcludeUppercase)},
		{digits, isSet(in.ExcludeNumbers)},
		{punctuation, isSet(in.ExcludePunctuation)},
	} {
		if cl.excluded {
			continue
		}
		if set := without(cl.chars, exclude); set != "" {
			required = append(required, set)
		}
	}
	all := strings.Join(required, "")
	if isSet(in.IncludeSpace) && !strings.Contains(exclude, " ") {
		all += " "
	}
	if all == "" {
		return nil, invalidParameter("The password can't be generated: every character type is excluded.")
	}
	requireEach := in.RequireEachIncludedType == nil || *in.RequireEachIncludedType
	if !requireEach {
		required = nil
	}
	if length < len(required) {
		return nil, invalidParameter("Password length is too short based on the required types.")
	}
	pw := make([]byte, 0, length)
	for _, set := range required {
		pw = append(pw, set[randIndex(len(set))])
	}
	for len(pw) < length {
		pw = append(pw, all[randIndex(len(all))])
	}
	for i := len(pw) - 1; i > 0; i-- { // Fisher–Yates, so the required characters land anywhere
		j := randIndex(i + 1)
		pw[i], pw[j] = pw[j], pw[i]
	}
	return getRandomPasswordOutput{RandomPassword: string(pw)}, nil
}
