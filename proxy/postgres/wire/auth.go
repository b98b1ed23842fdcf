package wire

import (
	"bufio"
	"crypto/md5"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/xdg-go/scram"
)

// ErrAuthFailed means the client's credentials did not verify.
var ErrAuthFailed = errors.New("pg: authentication failed")

// SCRAMIterations is the PBKDF2 iteration count of the credentials the proxy
// derives from a secret's password (PostgreSQL's default).
const SCRAMIterations = 4096

// SCRAMCredentials derives SCRAM-SHA-256 stored credentials for password
// with the given salt. Derivation costs SCRAMIterations HMACs; callers cache
// the result per password.
func SCRAMCredentials(password string, salt []byte) (scram.StoredCredentials, error) {
	c, err := scram.SHA256.NewClient("", password, "")
	if err != nil {
		return scram.StoredCredentials{}, err
	}
	return c.GetStoredCredentialsWithError(scram.KeyFactors{Salt: string(salt), Iters: SCRAMIterations})
}

// authConn is the pair of buffered streams a login runs over.
type authConn struct {
	r *Reader
	w *bufio.Writer
}

func (c authConn) send(code int32, payload []byte) error {
	c.w.Write(AppendAuth(nil, code, payload))
	return c.w.Flush()
}

func (c authConn) recvPassword() ([]byte, error) {
	typ, body, err := c.r.Next()
	if err != nil {
		return nil, err
	}
	if typ != MsgPassword {
		return nil, fmt.Errorf("pg: expected a password message, got %q", typ)
	}
	return body, nil
}

// AuthSCRAM runs a server-side SCRAM-SHA-256 exchange (RFC 5802/7677 as
// PostgreSQL frames it: AuthenticationSASL, SASLInitialResponse,
// AuthenticationSASLContinue, SASLResponse, AuthenticationSASLFinal) against
// creds. It does not send AuthenticationOk. A wrong password returns
// ErrAuthFailed; I/O and protocol errors are returned as they are.
func AuthSCRAM(r *Reader, w *bufio.Writer, creds scram.StoredCredentials) error {
	c := authConn{r, w}
	srv, err := scram.SHA256.NewServer(func(string) (scram.StoredCredentials, error) { return creds, nil })
	if err != nil {
		return err
	}
	conv := srv.NewConversation()
	if err := c.send(AuthSASL, []byte("SCRAM-SHA-256\x00\x00")); err != nil {
		return err
	}
	body, err := c.recvPassword()
	if err != nil {
		return err
	}
	mech, data, err := ParseSASLInitialResponse(body)
	if err != nil {
		return err
	}
	if mech != "SCRAM-SHA-256" {
		return fmt.Errorf("pg: unsupported SASL mechanism %q", clip(mech))
	}
	first, err := conv.Step(string(data))
	if err != nil {
		return fmt.Errorf("pg: SCRAM client-first: %w", err)
	}
	if err := c.send(AuthSASLContinue, []byte(first)); err != nil {
		return err
	}
	body, err = c.recvPassword()
	if err != nil {
		return err
	}
	final, err := conv.Step(string(body))
	if err != nil || !conv.Valid() {
		return ErrAuthFailed
	}
	c.w.Write(AppendAuth(nil, AuthSASLFinal, []byte(final)))
	return nil // flushed with AuthenticationOk by the caller
}

// MD5Response is what a client answers to AuthenticationMD5Password for
// user and password with salt: "md5" + md5hex(md5hex(password+user) + salt).
func MD5Response(user, password string, salt [4]byte) string {
	inner := md5.Sum([]byte(password + user))
	h := hex.EncodeToString(inner[:])
	outer := md5.Sum(append([]byte(h), salt[:]...))
	return "md5" + hex.EncodeToString(outer[:])
}

// AuthMD5 asks for an MD5 password and checks it against password for user.
func AuthMD5(r *Reader, w *bufio.Writer, user, password string) error {
	c := authConn{r, w}
	var salt [4]byte
	rand.Read(salt[:])
	if err := c.send(AuthMD5Password, salt[:]); err != nil {
		return err
	}
	body, err := c.recvPassword()
	if err != nil {
		return err
	}
	got, err := ParsePasswordMessage(body)
	if err != nil {
		return err
	}
	want := MD5Response(user, password, salt)
	if subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return ErrAuthFailed
	}
	return nil
}

// AuthCleartext asks for a cleartext password (IAM tokens travel this way)
// and returns what the client sent.
func AuthCleartext(r *Reader, w *bufio.Writer) (string, error) {
	c := authConn{r, w}
	if err := c.send(AuthCleartextPassword, nil); err != nil {
		return "", err
	}
	body, err := c.recvPassword()
	if err != nil {
		return "", err
	}
	return ParsePasswordMessage(body)
}
