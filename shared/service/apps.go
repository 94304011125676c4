package service

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"

	"github.com/loomipay/loomipay/shared/pay"
	"github.com/loomipay/loomipay/shared/postgres"
	"github.com/loomipay/loomipay/shared/streams"
)

// AppCredentials are what an app needs to read its own result streams. The password is shown
// once: Redis keeps only its hash, and so does nothing else.
type AppCredentials struct {
	AppID          string
	RedisUser      string
	RedisPassword  string
	PaymentStream  string
	RefundStream   string
	AccessString   string // the user's rules, for ElastiCache RBAC or a Redis without ACL SETUSER rights
	ACLApplied     bool   // false: Redis refused ACL SETUSER, the operator must create the user
	ACLUnsupported error  // why, when ACLApplied is false
}

func redisPassword() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand never fails on supported platforms
	return hex.EncodeToString(b)
}

func (s *Service) credentials(appID, user, password string) AppCredentials {
	return AppCredentials{
		AppID: appID, RedisUser: user, RedisPassword: password,
		PaymentStream: s.streams.AppStream(pay.StreamPaymentResults, appID),
		RefundStream:  s.streams.AppStream(pay.StreamRefundResults, appID),
		AccessString:  s.streams.AppAccessString(appID),
	}
}

// applyACL runs a Redis ACL change; a Redis that does not let us manage users (ElastiCache, an
// old Redis) is reported in the credentials rather than failing, since the app itself exists.
func applyACL(c *AppCredentials, err error) error {
	if errors.Is(err, streams.ErrACLUnsupported) {
		c.ACLUnsupported = err
		return nil
	}
	if err != nil {
		return err
	}
	c.ACLApplied = true
	return nil
}

func validApp(appID string) error {
	if !pay.ValidIdentifier(appID) {
		return pay.Invalid("app_id", "app_id must be 1-64 characters of A-Z, a-z, 0-9, '_', '.', '-'")
	}
	return nil
}

// CreateApp registers an app and creates its Redis user, which can only read, ack and manage
// consumer groups on the app's own two result streams. The user — its name, its password's
// hash and its rules — is kept in PostgreSQL, so that it can be made again if Redis loses it
// (EnsureAppUsers).
func (s *Service) CreateApp(ctx context.Context, appID string) (AppCredentials, error) {
	if err := validApp(appID); err != nil {
		return AppCredentials{}, err
	}
	err := s.store.CreateApp(ctx, appID)
	if errors.Is(err, postgres.ErrExists) {
		return AppCredentials{}, pay.Errorf(pay.KindConflict, "app_exists", "app %q already exists", appID)
	}
	if err != nil {
		return AppCredentials{}, err
	}
	c, err := s.setAppPassword(ctx, appID, false)
	if err != nil {
		return AppCredentials{}, fmt.Errorf("app %q was created but its Redis user was not (retry with 'loomipay apps rotate-redis-password %s'): %w", appID, appID, err)
	}
	return c, nil
}

// RotateAppRedisPassword gives the app's Redis user a new password. With keepOld the old ones
// keep working until the next rotation without keepOld; a user Redis lacks is made again.
func (s *Service) RotateAppRedisPassword(ctx context.Context, appID string, keepOld bool) (AppCredentials, error) {
	app, err := s.app(ctx, appID)
	if err != nil {
		return AppCredentials{}, err
	}
	if app.DisabledAt != nil {
		return AppCredentials{}, pay.Errorf(pay.KindConflict, "app_disabled", "app %q is disabled", appID)
	}
	return s.setAppPassword(ctx, appID, keepOld)
}

// setAppPassword gives the app's user a new password (keeping the old ones with keepOld), first
// in PostgreSQL, then in Redis: if Redis fails, the kept user is applied later by EnsureAppUsers.
func (s *Service) setAppPassword(ctx context.Context, appID string, keepOld bool) (AppCredentials, error) {
	u, err := s.appRedisUser(ctx, appID)
	if err != nil {
		return AppCredentials{}, err
	}
	password := redisPassword()
	if keepOld {
		u.PasswordHashes = append(u.PasswordHashes, streams.PasswordHash(password))
	} else {
		u.PasswordHashes = []string{streams.PasswordHash(password)}
	}
	u.Rules = s.streams.AppACLRules(appID)
	if err := s.store.SaveAppRedisUser(ctx, u); err != nil {
		return AppCredentials{}, err
	}
	c := s.credentials(appID, u.Username, password)
	return c, applyACL(&c, s.streams.ApplyAppUser(ctx, u.Username, appID, u.PasswordHashes, !u.Disabled))
}

// appRedisUser is the app's kept Redis user (an app made before users were kept keeps the name
// it had, see keptUser), or a new one, without a password yet, named after this deployment.
func (s *Service) appRedisUser(ctx context.Context, appID string) (postgres.AppRedisUser, error) {
	u, found, err := s.keptUser(ctx, appID)
	if err != nil || found {
		return u, err
	}
	deployment, err := s.store.DeploymentID(ctx)
	if err != nil {
		return u, err
	}
	return postgres.AppRedisUser{AppID: appID, Username: s.streams.AppUserName(deployment, appID)}, nil
}

// AppRedisUser is the name of the app's Redis user ("" when none is kept).
func (s *Service) AppRedisUser(ctx context.Context, appID string) (string, error) {
	u, err := s.store.AppRedisUser(ctx, appID)
	if errors.Is(err, pay.ErrNotFound) {
		return "", nil
	}
	return u.Username, err
}

// DisableApp stops an app: its API keys stop working (within API_KEY_CACHE_TTL), its Redis user
// is switched off and its connections closed, and no webhook is fanned out to it any more.
// It returns whether the Redis user could be switched off here.
func (s *Service) DisableApp(ctx context.Context, appID string) (aclApplied bool, err error) {
	if _, err := s.app(ctx, appID); err != nil {
		return false, err
	}
	if err := s.store.DisableApp(ctx, appID); err != nil {
		return false, err
	}
	u, found, err := s.keptUser(ctx, appID)
	if err != nil || !found {
		return aclResult(err)
	}
	if err := s.streams.ApplyAppUser(ctx, u.Username, appID, u.PasswordHashes, false); err != nil {
		return aclResult(err)
	}
	return aclResult(s.streams.KillAppUserClients(ctx, u.Username))
}

// EnableApp takes back DisableApp: keys accepted again, Redis user on (made again with its
// passwords if Redis lost it), webhooks for new results. aclApplied is false where Redis does not
// take ACL commands (the operator switches the user on).
func (s *Service) EnableApp(ctx context.Context, appID string) (aclApplied bool, err error) {
	if _, err := s.app(ctx, appID); err != nil {
		return false, err
	}
	if err := s.store.EnableApp(ctx, appID); err != nil {
		return false, err
	}
	u, found, err := s.keptUser(ctx, appID)
	if err != nil || !found {
		return aclResult(err)
	}
	return aclResult(s.streams.ApplyAppUser(ctx, u.Username, appID, u.PasswordHashes, true))
}

// keptUser is the app's kept Redis user; an app made before users were kept (migration 0008)
// has its user adopted first, if Redis still has it (found false otherwise: nothing to apply
// until the password is rotated).
func (s *Service) keptUser(ctx context.Context, appID string) (u postgres.AppRedisUser, found bool, err error) {
	u, err = s.store.AppRedisUser(ctx, appID)
	if err == nil {
		return u, true, nil
	}
	if !errors.Is(err, pay.ErrNotFound) {
		return u, false, err
	}
	return s.adoptLegacyUser(ctx, appID)
}

// adoptLegacyUser keeps in PostgreSQL the user an app had in Redis before users were kept
// (named streams.LegacyAppUser), with the password hashes Redis has, so that it is made again
// like the others from now on, without changing the app's password.
func (s *Service) adoptLegacyUser(ctx context.Context, appID string) (postgres.AppRedisUser, bool, error) {
	name := s.streams.LegacyAppUser(appID)
	hashes, err := s.streams.AppUserPasswordHashes(ctx, name)
	if errors.Is(err, streams.ErrACLUnsupported) {
		err = nil // users are made by hand there (ElastiCache): nothing to adopt
	}
	if err != nil || len(hashes) == 0 {
		return postgres.AppRedisUser{}, false, err
	}
	// Its rules are an older version's (no SELECT): kept as none, so that the next pass applies
	// the current ones.
	u := postgres.AppRedisUser{AppID: appID, Username: name, PasswordHashes: hashes, Rules: []string{}}
	if err := s.store.SaveAppRedisUser(ctx, u); err != nil {
		return u, false, err
	}
	s.log.InfoContext(ctx, "adopted an app's Redis user made before users were kept", "app_id", appID, "redis_user", name)
	u, err = s.store.AppRedisUser(ctx, appID) // with the app's state
	return u, err == nil, err
}

// aclResult turns the outcome of an ACL change into DisableApp's and EnableApp's answer.
func aclResult(err error) (bool, error) {
	if errors.Is(err, streams.ErrACLUnsupported) {
		return false, nil
	}
	return err == nil, err
}

func (s *Service) app(ctx context.Context, appID string) (postgres.App, error) {
	if err := validApp(appID); err != nil {
		return postgres.App{}, err
	}
	a, err := s.store.App(ctx, appID)
	if errors.Is(err, pay.ErrNotFound) {
		return a, pay.Errorf(pay.KindNotFound, pay.CodeNotFound, "app %q does not exist; create it with 'loomipay apps create %s'", appID, appID)
	}
	if err != nil {
		return a, fmt.Errorf("read app: %w", err)
	}
	return a, nil
}

// EnsureAppUsers makes every app's Redis user what PostgreSQL keeps of it, so that apps keep
// reading their streams with the passwords they have after Redis lost its users (a restart
// without persistence, a failover to an empty replica): a user missing on a node is made again
// with its passwords (their hashes) and on or off as its app is; a user whose rules are not the
// current ones (a newer version's, other stream names) gets them. Apps made before users were kept
// have theirs adopted first. It returns how many users it applied. A Redis that does not take
// ACL commands (ElastiCache, whose users are AWS resources) is left alone.
func (s *Service) EnsureAppUsers(ctx context.Context) (int, error) {
	var errs []error
	legacy, err := s.store.AppsWithoutRedisUser(ctx)
	if err != nil {
		return 0, err
	}
	for _, a := range legacy {
		if _, _, err := s.adoptLegacyUser(ctx, a.ID); err != nil {
			errs = append(errs, fmt.Errorf("adopt the Redis user of %s: %w", a.ID, err))
		}
	}
	users, err := s.store.AppRedisUsers(ctx)
	if err != nil {
		return 0, err
	}
	applied := 0
	for _, u := range users {
		rules := s.streams.AppACLRules(u.AppID)
		same, err := s.streams.AppUserIs(ctx, u.Username, u.PasswordHashes, !u.Disabled)
		if errors.Is(err, streams.ErrACLUnsupported) {
			return applied, nil
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("read the Redis user of %s: %w", u.AppID, err))
			continue
		}
		newRules := !slices.Equal(rules, u.Rules)
		if same && !newRules {
			continue
		}
		if err := s.streams.ApplyAppUser(ctx, u.Username, u.AppID, u.PasswordHashes, !u.Disabled); err != nil {
			errs = append(errs, fmt.Errorf("apply the Redis user of %s: %w", u.AppID, err))
			continue
		}
		if newRules {
			u.Rules = rules
			if err := s.store.SaveAppRedisUser(ctx, u); err != nil {
				errs = append(errs, err)
			}
		}
		applied++
		s.log.InfoContext(ctx, "applied an app's Redis user as kept in PostgreSQL",
			"app_id", u.AppID, "redis_user", u.Username, "redis_lacked_it", !same, "new_rules", newRules)
	}
	return applied, errors.Join(errs...)
}
