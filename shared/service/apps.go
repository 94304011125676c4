package service

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"

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

func (s *Service) credentials(appID, password string) AppCredentials {
	return AppCredentials{
		AppID: appID, RedisUser: s.streams.AppUser(appID), RedisPassword: password,
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
// consumer groups on the app's own two result streams.
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
	c := s.credentials(appID, redisPassword())
	if err := applyACL(&c, s.streams.CreateAppUser(ctx, appID, c.RedisPassword)); err != nil {
		return AppCredentials{}, fmt.Errorf("app %q was created but its Redis user was not (retry with 'loomipay apps rotate-redis-password %s'): %w", appID, appID, err)
	}
	return c, nil
}

// RotateAppRedisPassword gives the app's Redis user a new password. With keepOld the old one
// keeps working until the next rotation; a missing user (e.g. created before this Redis) is
// created.
func (s *Service) RotateAppRedisPassword(ctx context.Context, appID string, keepOld bool) (AppCredentials, error) {
	app, err := s.app(ctx, appID)
	if err != nil {
		return AppCredentials{}, err
	}
	if app.DisabledAt != nil {
		return AppCredentials{}, pay.Errorf(pay.KindConflict, "app_disabled", "app %q is disabled", appID)
	}
	c := s.credentials(appID, redisPassword())
	exists, err := s.streams.AppUserExists(ctx, appID)
	if err = applyACL(&c, err); err != nil || !c.ACLApplied {
		return c, err
	}
	if !exists {
		return c, applyACL(&c, s.streams.CreateAppUser(ctx, appID, c.RedisPassword))
	}
	return c, applyACL(&c, s.streams.SetAppUserPassword(ctx, appID, c.RedisPassword, keepOld))
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
	err = s.streams.DisableAppUser(ctx, appID)
	if errors.Is(err, streams.ErrACLUnsupported) {
		return false, nil
	}
	return err == nil, err
}

// EnableApp takes back DisableApp: keys accepted again, Redis user on, webhooks for new results.
// aclApplied is false where Redis does not take ACL commands (the operator switches the user on).
// A user a Redis node lost (a restart without ACL persistence) is not made again here: rotating
// the app's Redis password does that.
func (s *Service) EnableApp(ctx context.Context, appID string) (aclApplied bool, err error) {
	if _, err := s.app(ctx, appID); err != nil {
		return false, err
	}
	if err := s.store.EnableApp(ctx, appID); err != nil {
		return false, err
	}
	err = s.streams.EnableAppUser(ctx, appID)
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
