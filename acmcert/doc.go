// Package acmcert owns the emulator's certificates: the local certificate
// authority, the server certificates that proxy endpoints present to TLS
// clients, and the certificates behind the mock ACM (AWS Certificate Manager)
// API.
//
// Real RDS Proxy presents certificates that chain to a public root, so clients
// never install an RDS CA bundle. A local emulator cannot do that, so it has
// a root of its own: a client trusts the PEM from [CA.CertPEM] once (the
// server also serves it as the CA bundle) and then VERIFY_CA and
// VERIFY_IDENTITY modes work against every proxy endpoint.
//
// # Layers
//
//  1. [CA] is the root: one ECDSA P-256 key and a self-signed certificate
//     valid for ten years. [LoadOrCreateCA] keeps both in a directory
//     (ca.key, ca.pem) so the trust a client was given survives restarts, or
//     keeps them in memory for tests. A CA is immutable and safe for
//     concurrent use.
//  2. [CA.IssueServerCert] signs an ECDSA P-256 server leaf for a set of DNS
//     names and IP addresses, with the root appended to its chain.
//  3. [EndpointCerts] is what the proxy data plane uses. It hands each listener
//     a [tls.Config] whose GetCertificate callback returns the certificate for
//     that endpoint's [Endpoint] (its AWS-style DNS names, wildcard names,
//     loopback address, plus localhost, 127.0.0.1 and ::1). It issues a
//     certificate on first use, caches it by SAN set, and renews it when less
//     than RenewBefore of its validity remains.
//  4. [CA.IssueForDomains] and [EncryptPrivateKeyPEM] back the ACM API:
//     RequestCertificate gets a certificate, chain and key in PEM, and
//     ExportCertificate returns the key as passphrase-encrypted PKCS#8
//     (PBES2: PBKDF2-HMAC-SHA256 and AES-256-CBC), as ACM does.
//
// # Data flow
//
// At start the server calls LoadOrCreateCA with its state directory and
// creates one EndpointCerts. When the proxy manager applies a proxy's desired
// state it builds an Endpoint from the endpoint's DNS name and address and asks
// EndpointCerts.TLSConfig for the listener's TLS configuration; every TLS
// handshake afterwards asks the cache, which answers from memory unless the
// certificate is near expiry. The ACM front end (not yet written) stores what
// IssueForDomains returns per certificate ARN, and encrypts the key on export.
package acmcert
