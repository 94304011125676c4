package ops

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/loomipay/loomipay/shared/pay"
	"github.com/loomipay/loomipay/shared/postgres"
)

// Operator tokens look like "lpo_<id>_<secret>", like API keys: the id finds the record, the
// SHA-256 of the whole token is compared in constant time. Only the hash is stored.
const tokenPrefix = "lpo_"

// Operator is a person allowed to operate the service.
type Operator struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Role       Role       `json:"role"`
	CreatedAt  time.Time  `json:"created_at"`
	CreatedBy  string     `json:"created_by"`
	DisabledAt *time.Time `json:"disabled_at,omitempty"`
}

var operatorName = regexp.MustCompile(`^[A-Za-z0-9_.@-]{1,64}$`)

func randomToken(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func hash(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// CreateOperator adds an operator and returns its token, which is shown once and never stored.
// Only an admin may (the CLI acts as admin: whoever holds DATABASE_URL holds everything anyway).
func (o *Ops) CreateOperator(ctx context.Context, a Actor, name string, role Role) (string, Operator, error) {
	if err := o.authorize(ctx, a, RoleAdmin, "operator.create", name); err != nil {
		return "", Operator{}, err
	}
	if !operatorName.MatchString(name) {
		return "", Operator{}, pay.Invalid("name", "name must be 1-64 characters of A-Z, a-z, 0-9, '_', '.', '@', '-'")
	}
	if role.rank() == 0 {
		return "", Operator{}, pay.Invalid("role", "role must be viewer, operator or admin")
	}
	idBytes := make([]byte, 6)
	if _, err := rand.Read(idBytes); err != nil {
		return "", Operator{}, err
	}
	id := hex.EncodeToString(idBytes)
	token := tokenPrefix + id + "_" + randomToken(30)
	op := Operator{ID: id, Name: name, Role: role, CreatedAt: o.now(), CreatedBy: a.Name}
	_, err := o.store.InTx(ctx, func(tx *postgres.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO operators (id, name, role, token_hash, created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6)`,
			op.ID, op.Name, string(op.Role), hash(token), op.CreatedAt, op.CreatedBy); err != nil {
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.Code == "23505" {
				return pay.Errorf(pay.KindConflict, "operator_exists", "an operator named %s already exists", name)
			}
			return fmt.Errorf("insert operator: %w", err)
		}
		return auditTx(ctx, tx, a, "operator.create", op.Name, nil, op, "")
	})
	if err != nil {
		return "", Operator{}, err
	}
	return token, op, nil
}

// Operators lists the operators (never their tokens).
func (o *Ops) Operators(ctx context.Context, a Actor) ([]Operator, error) {
	if err := o.authorize(ctx, a, RoleViewer, "operator.list", ""); err != nil {
		return nil, err
	}
	rows, err := o.store.Pool().Query(ctx, `SELECT id, name, role, created_at, created_by, disabled_at FROM operators ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list operators: %w", err)
	}
	defer rows.Close()
	var out []Operator
	for rows.Next() {
		var op Operator
		if err := rows.Scan(&op.ID, &op.Name, &op.Role, &op.CreatedAt, &op.CreatedBy, &op.DisabledAt); err != nil {
			return nil, err
		}
		out = append(out, op)
	}
	return out, rows.Err()
}

// DisableOperator stops an operator's token and sessions from working.
func (o *Ops) DisableOperator(ctx context.Context, a Actor, name, note string) error {
	if err := o.authorize(ctx, a, RoleAdmin, "operator.disable", name); err != nil {
		return err
	}
	_, err := o.store.InTx(ctx, func(tx *postgres.Tx) error {
		var id string
		err := tx.QueryRow(ctx, `UPDATE operators SET disabled_at = coalesce(disabled_at, now()) WHERE name = $1 RETURNING id`, name).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			return pay.Errorf(pay.KindNotFound, pay.CodeNotFound, "no operator named %s", name)
		}
		if err != nil {
			return fmt.Errorf("disable operator: %w", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM operator_sessions WHERE operator_id = $1`, id); err != nil {
			return fmt.Errorf("end sessions: %w", err)
		}
		return auditTx(ctx, tx, a, "operator.disable", name, map[string]string{"state": "active"}, map[string]string{"state": "disabled"}, note)
	})
	return err
}

// AuthenticateToken returns the operator whose token this is, or an unauthorized error.
func (o *Ops) AuthenticateToken(ctx context.Context, token string) (Operator, error) {
	fail := pay.Errorf(pay.KindUnauthorized, pay.CodeUnauthorized, "unknown or disabled operator token")
	rest, ok := strings.CutPrefix(strings.TrimSpace(token), tokenPrefix)
	if !ok {
		return Operator{}, fail
	}
	id, _, ok := strings.Cut(rest, "_")
	if !ok || id == "" {
		return Operator{}, fail
	}
	var op Operator
	var stored []byte
	err := o.store.Pool().QueryRow(ctx, `SELECT id, name, role, created_at, created_by, disabled_at, token_hash FROM operators WHERE id = $1`, id).
		Scan(&op.ID, &op.Name, &op.Role, &op.CreatedAt, &op.CreatedBy, &op.DisabledAt, &stored)
	if errors.Is(err, pgx.ErrNoRows) {
		return Operator{}, fail
	}
	if err != nil {
		return Operator{}, fmt.Errorf("read operator: %w", err)
	}
	if subtle.ConstantTimeCompare(stored, hash(strings.TrimSpace(token))) != 1 || op.DisabledAt != nil {
		return Operator{}, fail
	}
	return op, nil
}

// Session is a console login.
type Session struct {
	Operator  Operator
	CSRF      string
	ExpiresAt time.Time
}

// Actor is the session's operator acting through the console.
func (s Session) Actor() Actor {
	return Actor{Name: s.Operator.Name, Role: s.Operator.Role, Via: "console"}
}

// Login checks an operator token from client (the address it came from; "" when unknown) and
// opens a session of ttl; it returns the session secret for the cookie (only its hash is
// stored). Wrong tokens are throttled per client address and token id (service.LoginFailures;
// a 429 with RetryAfter). Logins are audited; refused ones too, collapsed (refusedLogin).
func (o *Ops) Login(ctx context.Context, token, client string, ttl time.Duration) (string, Session, error) {
	if err := o.logins.Check(client); err != nil {
		o.refusedLogin(ctx, client, "throttled")
		return "", Session{}, err
	}
	op, err := o.AuthenticateToken(ctx, token)
	if err != nil {
		var pe *pay.Error
		if errors.As(err, &pe) && pe.Kind == pay.KindUnauthorized {
			err = o.logins.Failed(ctx, client, tokenID(token), err)
			o.refusedLogin(ctx, client, "bad operator token")
		}
		return "", Session{}, err
	}
	secret := randomToken(32)
	s := Session{Operator: op, CSRF: randomToken(24), ExpiresAt: o.now().Add(ttl)}
	if _, err := o.store.Pool().Exec(ctx, `INSERT INTO operator_sessions (token_hash, operator_id, csrf_token, expires_at) VALUES ($1, $2, $3, $4)`,
		hash(secret), op.ID, s.CSRF, s.ExpiresAt); err != nil {
		return "", Session{}, fmt.Errorf("open session: %w", err)
	}
	// Expired sessions of anyone are removed now and then; logins are rare enough.
	_, _ = o.store.Pool().Exec(ctx, `DELETE FROM operator_sessions WHERE expires_at < now()`)
	_ = o.audit(ctx, s.Actor(), "session.login", op.Name, "ok", nil, nil, "")
	return secret, s, nil
}

// tokenID is the id part of an operator token ("lpo_<id>_…"), or "" for anything else.
func tokenID(token string) string {
	rest, ok := strings.CutPrefix(strings.TrimSpace(token), tokenPrefix)
	if !ok {
		return ""
	}
	id, _, ok := strings.Cut(rest, "_")
	if !ok || len(id) > 64 {
		return ""
	}
	return id
}

// refusedLogin audits refused logins from client collapsed: the first refusal in a minute gets a
// row (subject: the client address), which also counts the refusals since the previous row;
// the others are only counted. A flood of wrong tokens writes a row a minute, not a row each.
// Without Redis every refusal gets its row.
func (o *Ops) refusedLogin(ctx context.Context, client, why string) {
	first, before, err := o.streams.CountSince(ctx, "audit:login-refused:{"+client+"}", time.Minute)
	if err == nil && !first {
		return
	}
	note := why
	if before > 0 {
		note = fmt.Sprintf("%s; %d more refused from this address since the previous row (one row a minute)", why, before)
	}
	if err := o.audit(ctx, Actor{Name: "unknown", Role: "none", Via: "console"}, "session.login", client, "refused", nil, nil, note); err != nil {
		o.log.ErrorContext(ctx, "audit of a refused login failed", "err", err)
	}
}

// Session returns the live session of a cookie secret, or an unauthorized error.
func (o *Ops) Session(ctx context.Context, secret string) (Session, error) {
	var s Session
	err := o.store.Pool().QueryRow(ctx, `SELECT o.id, o.name, o.role, o.created_at, o.created_by, s.csrf_token, s.expires_at
		FROM operator_sessions s JOIN operators o ON o.id = s.operator_id
		WHERE s.token_hash = $1 AND s.expires_at > now() AND o.disabled_at IS NULL`, hash(secret)).
		Scan(&s.Operator.ID, &s.Operator.Name, &s.Operator.Role, &s.Operator.CreatedAt, &s.Operator.CreatedBy, &s.CSRF, &s.ExpiresAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return s, pay.Errorf(pay.KindUnauthorized, pay.CodeUnauthorized, "no session or session expired: log in again")
	}
	if err != nil {
		return s, fmt.Errorf("read session: %w", err)
	}
	return s, nil
}

// Logout ends a session.
func (o *Ops) Logout(ctx context.Context, secret string) error {
	var name string
	err := o.store.Pool().QueryRow(ctx, `DELETE FROM operator_sessions s USING operators o WHERE s.token_hash = $1 AND o.id = s.operator_id RETURNING o.name`, hash(secret)).Scan(&name)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("end session: %w", err)
	}
	return nil
}
