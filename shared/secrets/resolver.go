// Package secrets resolves configuration values that are plain environment variables when run
// locally and AWS Secrets Manager secrets when deployed.
//
// For a name N (for example DATABASE_URL or LAKALA_PRIVATE_KEY) a Resolver looks at, in order:
//
//   - $N: used as is when non-empty, so local runs and overrides never touch AWS;
//   - $N_SECRET_ARN: the SecretString of that secret, fetched once per process and cached, since a
//     Lambda execution environment lives for many invocations and secrets rotate rarely;
//   - otherwise the value is absent (ok == false).
//
// A secret may hold a plain string or a JSON object. For a JSON object:
//
//   - if $N_SECRET_KEY is set, the value of that key is used (a string, or a number's text);
//   - else, when N is DATABASE_URL and the object looks like an RDS secret
//     ({"username","password","host","port","dbname"}, as written by RDS and its rotation
//     templates), it is turned into postgres://username:password@host:port/dbname with user and
//     password escaped; port defaults to 5432 and dbname may be omitted. Secrets that RDS
//     creates for ManageMasterUserPassword hold only username and password, so they are an
//     error here: store a full URL, or an object with host as well;
//   - else the whole SecretString is used.
//
// Secrets are read with the AWS SDK's Secrets Manager client, configured by
// aws-sdk-go-v2/config: every standard credential and region source works (Lambda's environment,
// profiles and SSO, EKS web identity, the ECS task role, EC2's instance profile). The endpoint can
// be overridden with WithEndpoint or $SECRETS_MANAGER_ENDPOINT (LocalStack, moto, tests);
// AWS_ENDPOINT_URL_SECRETS_MANAGER and AWS_ENDPOINT_URL, which the AWS SDKs read, work too.
//
// A secret that a rotation changes under a running process is read again with Reload; Rotating
// does that once for all the callers that found the old value refused.
//
// Errors and logs name variables, keys and ARNs, never secret values.
package secrets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"
)

// EndpointEnv names the environment variable that overrides the Secrets Manager endpoint.
const EndpointEnv = "SECRETS_MANAGER_ENDPOINT"

// DatabaseURLName is the one name whose RDS-style JSON secret is turned into a postgres URL.
const DatabaseURLName = "DATABASE_URL"

// fetchTimeout bounds a shared fetch, which runs detached from any single caller's context so
// that one caller giving up does not fail the others waiting on the same secret.
const fetchTimeout = 20 * time.Second

// ErrNotSet is returned (wrapped) by Require when a name has neither a value nor a secret ARN.
var ErrNotSet = errors.New("not set")

// SecretsAPI is what the Resolver reads secrets through: GetSecretString returns the
// SecretString of a secret, by ARN or name.
type SecretsAPI interface {
	GetSecretString(ctx context.Context, secretID string) (string, error)
}

// Option configures a Resolver.
type Option func(*Resolver)

// WithSecretsClient makes the Resolver use c instead of its Secrets Manager client configured
// from the environment.
func WithSecretsClient(c SecretsAPI) Option {
	return func(r *Resolver) { r.client = c }
}

// WithEndpoint points the Secrets Manager client at endpoint (for example LocalStack). It takes precedence
// over $SECRETS_MANAGER_ENDPOINT and has no effect together with WithSecretsClient.
func WithEndpoint(endpoint string) Option {
	return func(r *Resolver) { r.endpoint = endpoint }
}

// Resolver resolves named configuration values once per process (a Lambda execution environment):
// for name N it returns $N if set and non-empty; else, if $N_SECRET_ARN is set, the SecretString
// of that secret from Secrets Manager (fetched once, cached for the life of the process;
// concurrent callers share one fetch); else "" and ok=false. See the package documentation for
// JSON secrets. A Resolver is safe for concurrent use.
type Resolver struct {
	endpoint string

	clientMu sync.Mutex
	client   SecretsAPI

	mu      sync.Mutex
	fetches map[string]*fetch // by secret ARN

	// joinedInFlight, when set, is called each time a caller starts waiting on a fetch that
	// another caller began; tests use it to prove concurrent callers share one request.
	joinedInFlight func()
}

// fetch is one Secrets Manager read, shared by everyone asking for the same ARN. A successful
// fetch stays in the cache; a failed one is dropped so a later call retries.
type fetch struct {
	done  chan struct{}
	value string
	err   error
}

// NewResolver returns a Resolver. It makes no AWS calls and loads no AWS configuration: the SDK
// client is built on the first lookup that needs a secret.
func NewResolver(ctx context.Context, opts ...Option) (*Resolver, error) {
	r := &Resolver{
		endpoint: os.Getenv(EndpointEnv),
		fetches:  make(map[string]*fetch),
	}
	for _, opt := range opts {
		opt(r)
	}
	if r.endpoint != "" {
		u, err := url.Parse(r.endpoint)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return nil, fmt.Errorf("secrets: endpoint %q is not an absolute URL", r.endpoint)
		}
	}
	return r, nil
}

// Get returns the value for name: $name if non-empty, else the secret named by $name_SECRET_ARN,
// else ok=false. err is non-nil only when a secret was configured but could not be read or
// decoded.
func (r *Resolver) Get(ctx context.Context, name string) (value string, ok bool, err error) {
	if v := os.Getenv(name); v != "" {
		return v, true, nil
	}
	arn := os.Getenv(name + "_SECRET_ARN")
	if arn == "" {
		return "", false, nil
	}
	raw, err := r.secretString(ctx, name, arn)
	if err != nil {
		return "", false, err
	}
	v, err := decode(name, raw, os.Getenv(name+"_SECRET_KEY"))
	if err != nil {
		return "", false, err
	}
	return v, true, nil
}

// Require is Get for values the process cannot run without: absence is an error wrapping
// ErrNotSet.
func (r *Resolver) Require(ctx context.Context, name string) (string, error) {
	v, ok, err := r.Get(ctx, name)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", fmt.Errorf("secrets: %s is required: set %s or %s_SECRET_ARN: %w", name, name, name, ErrNotSet)
	}
	return v, nil
}

// Prefetch starts reading the secrets of names that come from Secrets Manager, all at once, so
// that the Gets that follow wait for the slowest read, not for the sum of them (a function reads
// three or four at its cold start). A Get joins the read under way; a read that fails is not kept.
func (r *Resolver) Prefetch(ctx context.Context, names ...string) {
	for _, name := range names {
		if FromSecret(name) {
			go func() { _, _ = r.secretString(ctx, name, os.Getenv(name+"_SECRET_ARN")) }()
		}
	}
}

// FromSecret reports whether name's value comes from Secrets Manager (no $name, a
// $name_SECRET_ARN): whether a rotation can change it.
func FromSecret(name string) bool {
	return os.Getenv(name) == "" && os.Getenv(name+"_SECRET_ARN") != ""
}

// Reload is Get reading the secret again: the value cached for name's secret is dropped (unless
// a read of it is under way, whose answer is fresh) and Secrets Manager asked anew. A rotation
// that changed a password under a running process is picked up so. A value given directly ($name)
// is returned as it is.
func (r *Resolver) Reload(ctx context.Context, name string) (value string, ok bool, err error) {
	if FromSecret(name) {
		arn := os.Getenv(name + "_SECRET_ARN")
		r.mu.Lock()
		if f, found := r.fetches[arn]; found {
			select {
			case <-f.done:
				delete(r.fetches, arn)
			default:
			}
		}
		r.mu.Unlock()
	}
	return r.Get(ctx, name)
}

// secretString returns the SecretString of arn, joining an in-flight fetch if there is one.
func (r *Resolver) secretString(ctx context.Context, name, arn string) (string, error) {
	r.mu.Lock()
	f, found := r.fetches[arn]
	if !found {
		f = &fetch{done: make(chan struct{})}
		r.fetches[arn] = f
	}
	r.mu.Unlock()

	if !found {
		go r.run(context.WithoutCancel(ctx), name, arn, f)
	} else if r.joinedInFlight != nil {
		select {
		case <-f.done:
		default:
			r.joinedInFlight()
		}
	}

	select {
	case <-f.done:
		return f.value, f.err
	case <-ctx.Done():
		return "", fmt.Errorf("secrets: reading %s from Secrets Manager: %w", name, ctx.Err())
	}
}

func (r *Resolver) run(ctx context.Context, name, arn string, f *fetch) {
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()

	f.value, f.err = r.read(ctx, name, arn)
	if f.err != nil {
		r.mu.Lock()
		delete(r.fetches, arn)
		r.mu.Unlock()
	}
	close(f.done)
}

func (r *Resolver) read(ctx context.Context, name, arn string) (string, error) {
	client, err := r.secretsClient(ctx, arn)
	if err != nil {
		return "", fmt.Errorf("secrets: reading %s from Secrets Manager: %w", name, err)
	}
	// The errors carry the status and the service's message, never a SecretString.
	value, err := client.GetSecretString(ctx, arn)
	if err != nil {
		if name == arn { // a reference (Reference): the ARN is the name
			return "", fmt.Errorf("secrets: reading %s from Secrets Manager: %w", arn, err)
		}
		return "", fmt.Errorf("secrets: reading %s from Secrets Manager (%s_SECRET_ARN=%s): %w", name, name, arn, err)
	}
	slog.InfoContext(ctx, "read "+name+" from Secrets Manager", "arn", arn)
	return value, nil
}

// secretsClient returns the configured client, building the Secrets Manager one on first use so
// that runs without any *_SECRET_ARN never load the AWS configuration.
func (r *Resolver) secretsClient(ctx context.Context, arn string) (SecretsAPI, error) {
	r.clientMu.Lock()
	defer r.clientMu.Unlock()
	if r.client != nil {
		return r.client, nil
	}
	client, err := newSecretsManager(ctx, r.endpoint, arn, attemptTimeout, 0)
	if err != nil {
		return nil, fmt.Errorf("loading AWS configuration: %w", err)
	}
	r.client = client
	return r.client, nil
}

// decode turns a SecretString into the value for name. It never wraps encoding/json errors:
// their messages can quote parts of the input.
func decode(name, raw, key string) (string, error) {
	fields, isObject := jsonObject(raw)
	switch {
	case key != "":
		if !isObject {
			return "", fmt.Errorf("secrets: %s: %s_SECRET_KEY is %q but the secret is not a JSON object", name, name, key)
		}
		v, ok := fields[key]
		if !ok {
			return "", fmt.Errorf("secrets: %s: secret has no key %q (from %s_SECRET_KEY)", name, key, name)
		}
		s, ok := scalar(v)
		if !ok {
			return "", fmt.Errorf("secrets: %s: key %q of the secret is not a string or number", name, key)
		}
		return s, nil
	case isObject && name == DatabaseURLName:
		return postgresURL(name, fields)
	default:
		return raw, nil
	}
}

// jsonObject reports whether raw is a JSON object, and its members if so.
func jsonObject(raw string) (map[string]json.RawMessage, bool) {
	if !strings.HasPrefix(strings.TrimSpace(raw), "{") {
		return nil, false
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal([]byte(raw), &fields); err != nil {
		return nil, false
	}
	return fields, true
}

// scalar returns a JSON string's value or a JSON number's text; null, booleans, arrays and
// objects are not configuration values.
func scalar(v json.RawMessage) (string, bool) {
	switch {
	case len(v) == 0:
		return "", false
	case v[0] == '"':
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return "", false
		}
		return s, true
	case v[0] == '-' || (v[0] >= '0' && v[0] <= '9'):
		return string(v), true
	default:
		return "", false
	}
}

// postgresURL builds a connection URL from an RDS-style secret.
func postgresURL(name string, fields map[string]json.RawMessage) (string, error) {
	get := func(key string) (string, error) {
		v, ok := fields[key]
		if !ok {
			return "", nil
		}
		s, ok := scalar(v)
		if !ok {
			return "", fmt.Errorf("secrets: %s: key %q of the RDS secret is not a string or number", name, key)
		}
		return s, nil
	}
	values := map[string]string{}
	for _, key := range []string{"engine", "username", "password", "host", "port", "dbname"} {
		v, err := get(key)
		if err != nil {
			return "", err
		}
		values[key] = v
	}
	if e := values["engine"]; e != "" && e != "postgres" && e != "aurora-postgresql" {
		return "", fmt.Errorf("secrets: %s: RDS secret is for engine %q, not postgres", name, e)
	}
	for _, key := range []string{"username", "password", "host"} {
		if values[key] == "" {
			return "", fmt.Errorf("secrets: %s: secret is a JSON object without %q; set %s_SECRET_KEY to pick a key or store a full URL", name, key, name)
		}
	}
	port := values["port"]
	if port == "" {
		port = "5432"
	}
	u := url.URL{
		Scheme: "postgres",
		User:   url.UserPassword(values["username"], values["password"]),
		Host:   net.JoinHostPort(values["host"], port),
	}
	if db := values["dbname"]; db != "" {
		u.Path = "/" + db
	}
	return u.String(), nil
}

// A reference names where a value is kept without holding it: a merchant's key and Lakala's
// certificates are stored in PostgreSQL as references only (docs/DECISIONS.md, "Merchants").
const (
	// refARNPrefix starts a Secrets Manager ARN: arn:aws…:secretsmanager:….
	refARNPrefix = "arn:"
	// RefFilePrefix starts a file's path (the local stack and tests): file:/path/to/key.pem.
	RefFilePrefix = "file:"
)

// CheckReference refuses what is not a reference this package can read: a Secrets Manager secret's
// ARN, or (allowFiles: the local stack, tests) file: and a path. A PEM pasted instead of a
// reference is named as such, never quoted.
func CheckReference(ref string, allowFiles bool) error {
	switch {
	case strings.Contains(ref, "-----BEGIN"):
		return errors.New("a PEM was given where a reference to it belongs (a Secrets Manager ARN): keys and certificates are never stored in the database")
	case strings.HasPrefix(ref, refARNPrefix):
		if !strings.Contains(ref, ":secretsmanager:") || !strings.Contains(ref, ":secret:") {
			return fmt.Errorf("%q is not the ARN of a Secrets Manager secret (arn:aws…:secretsmanager:REGION:ACCOUNT:secret:NAME)", ref)
		}
		return nil
	case strings.HasPrefix(ref, RefFilePrefix):
		if !allowFiles {
			return fmt.Errorf("%q: file references serve only the local stack (STAGE=dev); outside it use a Secrets Manager ARN", ref)
		}
		if strings.TrimPrefix(ref, RefFilePrefix) == "" {
			return fmt.Errorf("%q names no file", ref)
		}
		return nil
	}
	return fmt.Errorf("%q is not a reference: give a Secrets Manager ARN (arn:aws…:secretsmanager:…)%s", ref,
		map[bool]string{true: " or file:PATH", false: ""}[allowFiles])
}

// Reference reads the value a reference names: a Secrets Manager secret's SecretString (read once
// per process and shared like Get's; fresh drops what was read before, for a value a rotation may
// have changed) or a file. Errors name the reference, never the value.
func (r *Resolver) Reference(ctx context.Context, ref string, fresh bool) (string, error) {
	if err := CheckReference(ref, true); err != nil {
		return "", fmt.Errorf("secrets: %w", err)
	}
	if path, ok := strings.CutPrefix(ref, RefFilePrefix); ok {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("secrets: reading %s: %w", ref, err)
		}
		return string(b), nil
	}
	if fresh {
		r.mu.Lock()
		if f, found := r.fetches[ref]; found {
			select {
			case <-f.done:
				delete(r.fetches, ref)
			default:
			}
		}
		r.mu.Unlock()
	}
	return r.secretString(ctx, ref, ref)
}
