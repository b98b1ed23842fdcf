package acmcert

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
)

// pbkdf2Iterations is the PBKDF2 work factor of an exported key: each
// passphrase guess costs 200,000 SHA-256 compressions, while one export stays
// well under a second.
const pbkdf2Iterations = 100_000

// Object identifiers of RFC 8018 (PKCS #5 v2.1) and RFC 3565.
var (
	oidPBES2          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}
	oidPBKDF2         = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}
	oidHMACWithSHA256 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 9}
	oidAES256CBC      = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
)

// encryptedPrivateKeyInfo is RFC 5958's EncryptedPrivateKeyInfo with the
// algorithm fixed to PBES2.
type encryptedPrivateKeyInfo struct {
	EncryptionAlgorithm pbes2Algorithm
	EncryptedData       []byte
}

// pbes2Algorithm is the AlgorithmIdentifier {PBES2, PBES2-params}.
type pbes2Algorithm struct {
	Algorithm asn1.ObjectIdentifier
	Params    pbes2Params
}

// pbes2Params is RFC 8018's PBES2-params.
type pbes2Params struct {
	KeyDerivationFunc pbkdf2Algorithm
	EncryptionScheme  cbcAlgorithm
}

// pbkdf2Algorithm is the AlgorithmIdentifier {PBKDF2, PBKDF2-params}.
type pbkdf2Algorithm struct {
	Algorithm asn1.ObjectIdentifier
	Params    pbkdf2Params
}

// pbkdf2Params is RFC 8018's PBKDF2-params without the optional keyLength,
// which the cipher implies.
type pbkdf2Params struct {
	Salt           []byte
	IterationCount int
	PRF            pkix.AlgorithmIdentifier
}

// cbcAlgorithm is the AlgorithmIdentifier of a CBC cipher, whose parameter is
// the IV.
type cbcAlgorithm struct {
	Algorithm asn1.ObjectIdentifier
	IV        []byte
}

// EncryptPrivateKeyPEM encrypts the private key in keyPEM (PKCS#8, SEC 1 or
// PKCS#1) under passphrase and returns it as an "ENCRYPTED PRIVATE KEY" PEM
// block: PKCS#8 EncryptedPrivateKeyInfo with PBES2, PBKDF2-HMAC-SHA256 over a
// random 16-byte salt and AES-256-CBC, the form ACM's ExportCertificate
// returns. `openssl pkcs8 -in key.pem -passin pass:...` decrypts it.
func EncryptPrivateKeyPEM(keyPEM []byte, passphrase []byte) ([]byte, error) {
	if len(passphrase) == 0 {
		return nil, errors.New("acmcert: empty passphrase")
	}
	key, err := parsePrivateKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("acmcert: %w", err)
	}
	plain, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("acmcert: marshal private key: %w", err)
	}

	salt := make([]byte, 16)
	iv := make([]byte, aes.BlockSize)
	rand.Read(salt) // crypto/rand.Read never fails
	rand.Read(iv)
	dk, err := pbkdf2.Key(sha256.New, string(passphrase), salt, pbkdf2Iterations, 32)
	if err != nil {
		return nil, fmt.Errorf("acmcert: derive key: %w", err)
	}
	block, err := aes.NewCipher(dk)
	if err != nil {
		return nil, fmt.Errorf("acmcert: %w", err)
	}
	// PKCS#7 padding: always 1..16 bytes, each holding the pad length.
	pad := aes.BlockSize - len(plain)%aes.BlockSize
	data := make([]byte, len(plain)+pad)
	copy(data, plain)
	for i := len(plain); i < len(data); i++ {
		data[i] = byte(pad)
	}
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(data, data)

	der, err := asn1.Marshal(encryptedPrivateKeyInfo{
		EncryptionAlgorithm: pbes2Algorithm{
			Algorithm: oidPBES2,
			Params: pbes2Params{
				KeyDerivationFunc: pbkdf2Algorithm{
					Algorithm: oidPBKDF2,
					Params: pbkdf2Params{
						Salt:           salt,
						IterationCount: pbkdf2Iterations,
						PRF:            pkix.AlgorithmIdentifier{Algorithm: oidHMACWithSHA256, Parameters: asn1.NullRawValue},
					},
				},
				EncryptionScheme: cbcAlgorithm{Algorithm: oidAES256CBC, IV: iv},
			},
		},
		EncryptedData: data,
	})
	if err != nil {
		return nil, fmt.Errorf("acmcert: marshal encrypted key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: der}), nil
}
