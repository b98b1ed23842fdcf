package rds

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
)

const (
	hexDigits   = "0123456789abcdef"
	lowerAlnum  = "abcdefghijklmnopqrstuvwxyz0123456789"
	upperAlnum  = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	proxyPrefix = "prx-"
)

func randomString(alphabet string, n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// newProxyID returns prx-<17 hex>, the shape AWS uses (prx-0123a01b12345c0ab).
func newProxyID(prefix string) string { return prefix + randomString(hexDigits, 17) }

// hashID derives a deterministic id from parts, e.g. the VpcId of a set of
// subnets, so the same input always shows the same id.
func hashID(n int, parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(h[:])[:n]
}

// accountDNSLabel is the 12-character label AWS puts in every endpoint name
// of one account and region (…proxy-ab0cd1efghij.us-east-1.rds.amazonaws.com).
func accountDNSLabel(account, region string) string {
	h := sha256.Sum256([]byte(account + "/" + region))
	out := make([]byte, 12)
	for i := range out {
		out[i] = lowerAlnum[int(h[i])%len(lowerAlnum)]
	}
	return string(out)
}

func arn(region, account, resource string) string {
	return fmt.Sprintf("arn:aws:rds:%s:%s:%s", region, account, resource)
}

// proxyNamePattern is the model's pattern for proxy, endpoint and target
// group names.
var proxyNamePattern = regexp.MustCompile(`^[a-zA-Z](?:-?[a-zA-Z0-9]+)*$`)

// identifierPattern is RDS's rule for instance and cluster identifiers.
var identifierPattern = regexp.MustCompile(`^[a-zA-Z](?:-?[a-zA-Z0-9]+)*$`)

func checkProxyName(param, name string) error {
	if len(name) < 1 || len(name) > 63 || !proxyNamePattern.MatchString(name) {
		return invalidIdentifier(param)
	}
	return nil
}

func checkIdentifier(param, id string) error {
	if len(id) < 1 || len(id) > 63 || !identifierPattern.MatchString(id) {
		return invalidIdentifier(param)
	}
	return nil
}
