package acmcert

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"os/exec"
	"testing"
)

// decryptPKCS8PEM reverses EncryptPrivateKeyPEM, checking every algorithm
// identifier, and returns the PKCS#8 DER.
func decryptPKCS8PEM(encPEM, passphrase []byte) ([]byte, error) {
	block, _ := pem.Decode(encPEM)
	if block == nil || block.Type != "ENCRYPTED PRIVATE KEY" {
		return nil, errors.New("no ENCRYPTED PRIVATE KEY block")
	}
	var info encryptedPrivateKeyInfo
	if rest, err := asn1.Unmarshal(block.Bytes, &info); err != nil || len(rest) != 0 {
		return nil, errors.New("bad EncryptedPrivateKeyInfo")
	}
	alg := info.EncryptionAlgorithm
	kdf := alg.Params.KeyDerivationFunc
	enc := alg.Params.EncryptionScheme
	if !alg.Algorithm.Equal(oidPBES2) || !kdf.Algorithm.Equal(oidPBKDF2) ||
		!kdf.Params.PRF.Algorithm.Equal(oidHMACWithSHA256) || !enc.Algorithm.Equal(oidAES256CBC) {
		return nil, errors.New("unexpected algorithm identifiers")
	}
	dk, err := pbkdf2.Key(sha256.New, string(passphrase), kdf.Params.Salt, kdf.Params.IterationCount, 32)
	if err != nil {
		return nil, err
	}
	b, _ := aes.NewCipher(dk)
	data := bytes.Clone(info.EncryptedData)
	if len(data) == 0 || len(data)%aes.BlockSize != 0 || len(enc.IV) != aes.BlockSize {
		return nil, errors.New("bad ciphertext length")
	}
	cipher.NewCBCDecrypter(b, enc.IV).CryptBlocks(data, data)
	pad := int(data[len(data)-1])
	if pad == 0 || pad > aes.BlockSize || !bytes.Equal(data[len(data)-pad:], bytes.Repeat([]byte{byte(pad)}, pad)) {
		return nil, errors.New("bad padding (wrong passphrase?)")
	}
	der := data[:len(data)-pad]
	if _, err := x509.ParsePKCS8PrivateKey(der); err != nil {
		return nil, err
	}
	return der, nil
}

// keyInputs returns private keys in every PEM form EncryptPrivateKeyPEM
// accepts, with the PKCS#8 DER each must decrypt to.
func keyInputs(t *testing.T) []struct {
	name       string
	pem, pkcs8 []byte
} {
	t.Helper()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsa8, _ := x509.MarshalPKCS8PrivateKey(rsaKey)
	ec8, _ := x509.MarshalPKCS8PrivateKey(ecKey)
	sec1, _ := x509.MarshalECPrivateKey(ecKey)
	enc := func(typ string, der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}) }
	return []struct {
		name       string
		pem, pkcs8 []byte
	}{
		{"RSA PKCS#8", enc("PRIVATE KEY", rsa8), rsa8},
		{"RSA PKCS#1", enc("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey)), rsa8},
		{"EC PKCS#8", enc("PRIVATE KEY", ec8), ec8},
		{"EC SEC 1", enc("EC PRIVATE KEY", sec1), ec8},
	}
}

func TestEncryptPrivateKeyPEM(t *testing.T) {
	pass := []byte("correct horse battery")
	for _, in := range keyInputs(t) {
		t.Run(in.name, func(t *testing.T) {
			t.Parallel()
			encPEM, err := EncryptPrivateKeyPEM(in.pem, pass)
			if err != nil {
				t.Fatal(err)
			}
			der, err := decryptPKCS8PEM(encPEM, pass)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(der, in.pkcs8) {
				t.Error("decrypted key differs from the input")
			}
			if _, err := decryptPKCS8PEM(encPEM, []byte("wrong passphrase")); err == nil {
				t.Error("wrong passphrase decrypted the key")
			}
			again, _ := EncryptPrivateKeyPEM(in.pem, pass)
			if bytes.Equal(again, encPEM) {
				t.Error("two encryptions are identical: salt or IV not random")
			}
		})
	}

	for name, tc := range map[string]struct{ key, pass []byte }{
		"empty passphrase": {keyInputs(t)[2].pem, nil},
		"not a key":        {[]byte("-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n"), pass},
		"no PEM":           {[]byte("hello"), pass},
	} {
		if _, err := EncryptPrivateKeyPEM(tc.key, tc.pass); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestEncryptPrivateKeyPEMOpenSSL(t *testing.T) {
	bin := openssl(t)
	const pass = "s3cret-pass"
	for _, in := range keyInputs(t) {
		t.Run(in.name, func(t *testing.T) {
			t.Parallel()
			encPEM, err := EncryptPrivateKeyPEM(in.pem, []byte(pass))
			if err != nil {
				t.Fatal(err)
			}
			f := writeTemp(t, "key.enc.pem", encPEM)

			out, err := exec.Command(bin, "pkcs8", "-in", f, "-passin", "pass:"+pass).Output()
			if err != nil {
				t.Fatalf("openssl pkcs8: %v", err)
			}
			block, _ := pem.Decode(out)
			if block == nil || block.Type != "PRIVATE KEY" || !bytes.Equal(block.Bytes, in.pkcs8) {
				t.Fatalf("openssl decrypted to something else:\n%s", out)
			}

			if out, err := exec.Command(bin, "pkcs8", "-in", f, "-passin", "pass:wrong").CombinedOutput(); err == nil {
				t.Fatalf("openssl accepted a wrong passphrase:\n%s", out)
			}
		})
	}
}
