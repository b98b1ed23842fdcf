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
//  5. [ACM] is the mock Certificate Manager front-end (JSON 1.1, target
//     prefix CertificateManager): RequestCertificate, DescribeCertificate,
//     GetCertificate, ListCertificates, DeleteCertificate,
//     ImportCertificate, ExportCertificate and the three tag actions.
//
// # The ACM front-end
//
// State is kept per (account, region) behind one mutex: every certificate
// with its PEM certificate, chain and unencrypted PKCS#8 key, its tags, its
// users and its idempotency token. [ACM.Snapshot] writes it all as JSON, keys
// included; the server saves it (mode 0600) after every mutating action and
// restores it at start. What DescribeCertificate reports about the X.509
// certificate itself (Subject, Issuer, Serial, validity, key and signature
// algorithms, key usages) is read from the certificate, never stored twice.
//
// Behaviour, following ACM where a local emulator can:
//
//   - RequestCertificate issues at once, with the local CA, a certificate
//     for DomainName plus SubjectAlternativeNames (the domain is always the
//     first SAN; at most 10 names, ACM's default quota), with KeyAlgorithm
//     (default RSA_2048; public certificates accept RSA_2048, EC_prime256v1
//     and EC_secp384r1 only, as ACM does). Status is ISSUED at once, Type
//     AMAZON_ISSUED, or PRIVATE when CertificateAuthorityArn names a private
//     CA (the local CA signs it anyway). Domain validation cannot happen
//     locally, so DomainValidationOptions report SUCCESS with what ACM shows:
//     for DNS a CNAME _<hash>.<domain>. → _<hash>.<letters>.acm-validations.aws.
//     that is stable per account and domain, as in ACM; for EMAIL (ACM's
//     default) the five administrative addresses of the validation domain. The
//     same IdempotencyToken and DomainName within an hour give the same ARN.
//   - DescribeCertificate and ListCertificates spell key algorithms as ACM
//     answers them (RSA-2048, EC-prime256v1), not as the request enum does.
//     ListCertificates without Includes.keyTypes lists RSA_1024 and RSA_2048
//     certificates only, as ACM does; pages are in creation order unless
//     SortBy is given.
//   - ImportCertificate takes one PEM certificate, an unencrypted key that
//     must match it (RSA 1024–4096, EC P-256/384/521), and an optional chain
//     the certificate must verify against; without a chain the certificate
//     must be self-signed. It must be valid now. Problems are
//     ValidationException. Giving CertificateArn reimports onto an imported
//     certificate, keeping its ARN, tags and users (tags cannot be given).
//   - ExportCertificate works for PRIVATE certificates and those requested
//     with Options.Export ENABLED; imported and other Amazon-issued
//     certificates are refused with ValidationException, as in ACM.
//   - DeleteCertificate refuses a certificate in use (ResourceInUseException).
//     The RDS side records users with [ACM.SetInUse], [ACM.AddInUse] and
//     [ACM.RemoveInUse]; InUseBy and InUse reflect them.
//   - A CertificateArn that does not fit the model's pattern is a
//     ValidationException; one that fits but is no ACM certificate ARN is an
//     InvalidArnException; a certificate absent from the caller's account and
//     region is a ResourceNotFoundException. Tag keys in the aws: namespace
//     are InvalidTagException; more than 50 tags TooManyTagsException.
//
// The proxy data plane serves a certificate of this store with
// [ACM.TLSCertificate].
//
// # Data flow
//
// At start the server calls LoadOrCreateCA with its state directory and
// creates one EndpointCerts. When the proxy manager applies a proxy's desired
// state it builds an Endpoint from the endpoint's DNS name and address and asks
// EndpointCerts.TLSConfig for the listener's TLS configuration; every TLS
// handshake afterwards asks the cache, which answers from memory unless the
// certificate is near expiry. The server registers NewACM(ca).Service() with
// the gateway; each ACM action decodes its validated input, works on the
// certificates of the caller's account and region under the ACM mutex (key
// generation and key encryption run outside it), and returns its output
// structure for the gateway to render.
package acmcert
