// Package secrets is rdslocal's mock of AWS Secrets Manager: secrets, their
// versions and staging labels, the Secrets Manager JSON 1.1 API, and the
// reader the proxy data plane uses to fetch database credentials at
// authentication time.
//
// # What it owns
//
// A Store holds the secrets of every (account, region) pair behind one
// mutex. A secret has a name, an ARN
// (arn:aws:secretsmanager:<region>:<account>:secret:<name>-<6 random
// characters>), metadata (description, KMS key id, tags, dates) and an ordered
// list of versions. Each version holds a SecretString or a SecretBinary and a
// set of staging labels. A label is on at most one version of a secret:
//
//   - the first value gets AWSCURRENT;
//   - moving AWSCURRENT (PutSecretValue, UpdateSecret,
//     UpdateSecretVersionStage) gives AWSPREVIOUS to the version that lost
//     it, taking AWSPREVIOUS from wherever it was;
//   - a version left without labels is deprecated: ListSecretVersionIds hides
//     it unless IncludeDeprecated, and once a secret has more than 100
//     versions the oldest deprecated ones are dropped.
//
// A VersionId is the request's ClientRequestToken (the SDKs and the CLI always
// send one) or a fresh UUID. Repeating a CreateSecret or PutSecretValue with
// the same token and the same value is a no-op that returns the same
// VersionId; the same token with another value is ResourceExistsException.
//
// DeleteSecret schedules the deletion (DeletedDate set, the secret hidden
// from ListSecrets and refused by Get/Put/Update) until RestoreSecret or the
// end of the recovery window; the store purges expired secrets lazily, on the
// next request for that account and region. ForceDeleteWithoutRecovery
// removes the secret at once.
//
// # How data moves
//
//  1. The server gateway routes X-Amz-Target: secretsmanager.<Op> to the
//     api.Service returned by Store.Service, validates the body against the
//     botocore model (ValidationException / SerializationException) and calls
//     the handler with an *api.Call.
//  2. The handler decodes its typed input, checks what the model cannot
//     (name characters, SecretString xor SecretBinary, recovery windows,
//     label moves) and answers Secrets Manager's own errors
//     (ResourceNotFoundException, InvalidParameterException,
//     InvalidRequestException, ResourceExistsException,
//     InvalidNextTokenException), all HTTP 400.
//  3. Under the store mutex the handler reads or changes the region's state
//     and builds its output as a deep copy, so rendering the JSON after the
//     mutex is released never races with later requests. Timestamps render as
//     epoch seconds; absent members are omitted, never null.
//  4. After a successful non-read action the server saves Store.Snapshot
//     (JSON of every account and region, secret values included: the server
//     writes it mode 0600); at start it calls Store.Restore.
//
// The proxy data plane reads credentials through Store.CurrentValue, which
// returns the AWSCURRENT SecretString of a secret named by full ARN (as RDS
// proxies name them), partial ARN or name, and ParseCredentials, which reads
// the {"username":…,"password":…} format RDS Proxy expects. Each login reads
// the secret afresh, so a changed secret takes effect on the next
// authentication.
package secrets
