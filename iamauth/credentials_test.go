package iamauth

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"
)

func TestStaticCredentials(t *testing.T) {
	for _, tc := range []struct {
		akid    string
		ok      bool
		account string
	}{
		{"test", true, DefaultAccount},
		{"123456789012", true, "123456789012"},
		{"000000000000", true, DefaultAccount},
		{"12345678901", false, ""},
		{"1234567890123", false, ""},
		{"12345678901a", false, ""},
		{"AKIAIOSFODNN7EXAMPLE", false, ""},
		{"TEST", false, ""},
		{"", false, ""},
	} {
		c, ok := StaticCredentials{}.LookupAccessKey(tc.akid)
		if ok != tc.ok {
			t.Errorf("LookupAccessKey(%q) ok = %v, want %v", tc.akid, ok, tc.ok)
			continue
		}
		if !ok {
			continue
		}
		want := Credential{AccessKeyID: tc.akid, SecretAccessKey: "test", Account: tc.account,
			Principal: "arn:aws:iam::" + tc.account + ":root"}
		if c != want {
			t.Errorf("LookupAccessKey(%q) = %+v, want %+v", tc.akid, c, want)
		}
	}
}

func TestChain(t *testing.T) {
	var s Store
	// A stored key shadows the built-in one.
	if err := s.Put(Credential{AccessKeyID: "test", SecretAccessKey: "other", Account: "111122223333"}); err != nil {
		t.Fatal(err)
	}
	ch := Chain{nil, &s, StaticCredentials{}}
	if c, ok := ch.LookupAccessKey("test"); !ok || c.SecretAccessKey != "other" {
		t.Errorf("test = %+v, %v; want the stored key", c, ok)
	}
	if c, ok := ch.LookupAccessKey("123456789012"); !ok || c.Account != "123456789012" {
		t.Errorf("123456789012 = %+v, %v", c, ok)
	}
	if _, ok := ch.LookupAccessKey("AKIANOBODY"); ok {
		t.Error("AKIANOBODY found")
	}
	if _, ok := (Chain{}).LookupAccessKey("test"); ok {
		t.Error("empty chain found a key")
	}
}

func TestStore(t *testing.T) {
	var s Store
	if _, ok := s.LookupAccessKey("x"); ok {
		t.Fatal("zero Store found a key")
	}
	if err := s.Put(Credential{AccessKeyID: "AKIA1"}); err == nil {
		t.Error("Put without secret succeeded")
	}
	if err := s.Put(Credential{SecretAccessKey: "s"}); err == nil {
		t.Error("Put without access key id succeeded")
	}
	exp := time.Date(2026, 11, 25, 20, 0, 0, 0, time.UTC)
	creds := []Credential{
		{AccessKeyID: "ASIA2", SecretAccessKey: "s2", SessionToken: "tok", Expires: exp,
			Principal: "arn:aws:sts::111122223333:assumed-role/r/s", Account: "111122223333"},
		{AccessKeyID: "AKIA1", SecretAccessKey: "s1", Principal: "arn:aws:iam::111122223333:user/u", Account: "111122223333"},
	}
	for _, c := range creds {
		if err := s.Put(c); err != nil {
			t.Fatal(err)
		}
	}
	if c, ok := s.LookupAccessKey("ASIA2"); !ok || c != creds[0] || !c.Temporary() {
		t.Errorf("ASIA2 = %+v, %v", c, ok)
	}
	if got := s.List(); !reflect.DeepEqual(got, []Credential{creds[1], creds[0]}) {
		t.Errorf("List = %+v", got)
	}

	data, err := json.Marshal(&s)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"credentials":[` +
		`{"accessKeyId":"AKIA1","secretAccessKey":"s1","principal":"arn:aws:iam::111122223333:user/u","account":"111122223333"},` +
		`{"accessKeyId":"ASIA2","secretAccessKey":"s2","sessionToken":"tok","expires":"2026-11-25T20:00:00Z","principal":"arn:aws:sts::111122223333:assumed-role/r/s","account":"111122223333"}]}`
	if string(data) != want {
		t.Errorf("snapshot = %s\nwant       %s", data, want)
	}
	var restored Store
	if err := json.Unmarshal(data, &restored); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(restored.List(), s.List()) {
		t.Errorf("restored %+v, want %+v", restored.List(), s.List())
	}

	// A bad snapshot leaves the store as it was.
	for _, bad := range []string{`{`, `{"credentials":[{"accessKeyId":"A"}]}`,
		`{"credentials":[{"accessKeyId":"A","secretAccessKey":"s"},{"accessKeyId":"A","secretAccessKey":"t"}]}`} {
		if err := json.Unmarshal([]byte(bad), &restored); err == nil {
			t.Errorf("Unmarshal(%s) succeeded", bad)
		}
		if len(restored.List()) != 2 {
			t.Errorf("Unmarshal(%s) changed the store", bad)
		}
	}

	if !s.Delete("AKIA1") || s.Delete("AKIA1") {
		t.Error("Delete reported wrongly")
	}
	if _, ok := s.LookupAccessKey("AKIA1"); ok {
		t.Error("deleted key still found")
	}
}

func TestStoreConcurrent(t *testing.T) {
	var s Store
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				id := fmt.Sprintf("AKIA%d_%d", g, i%10)
				_ = s.Put(Credential{AccessKeyID: id, SecretAccessKey: "s"})
				s.LookupAccessKey(id)
				if i%3 == 0 {
					s.Delete(id)
				}
				if i%50 == 0 {
					if _, err := json.Marshal(&s); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	wg.Wait()
}
