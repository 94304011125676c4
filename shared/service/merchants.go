package service

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
)

// Gateways gives the Lakala client of each merchant: the one that signs as it and names its
// merchant_no and term_no (shared/merchants.Registry; SameGateway in tests of one merchant).
type Gateways interface {
	// Gateway returns the client of merchant id ("" is the default merchant).
	Gateway(ctx context.Context, merchantID string) (Gateway, error)
}

// MerchantIdentity is what a notification is bound against: the merchant_no an attempt's
// merchant answers to at Lakala, and the key that verifies Lakala's notifications for it.
type MerchantIdentity struct {
	ID         string
	MerchantNo string
	TermNo     string
	// NotifyKey verifies the notifications Lakala sends for this merchant (its notify certificate,
	// else its platform certificate); nil when none is configured.
	NotifyKey *rsa.PublicKey
}

// Merchants is every merchant the service speaks for: their clients, their identities, and the
// keys any of their notifications may be signed with.
type Merchants interface {
	Gateways
	// Identity returns merchant id's identity ("" is the default merchant).
	Identity(ctx context.Context, merchantID string) (MerchantIdentity, error)
	// NotifyKeys returns every distinct key that verifies some merchant's notifications.
	NotifyKeys(ctx context.Context) ([]*rsa.PublicKey, error)
}

// SameGateway is Gateways that gives gw for every merchant: for tests that drive one merchant
// through a gateway of their own making.
func SameGateway(gw Gateway) Gateways { return sameGateway{gw} }

type sameGateway struct{ gw Gateway }

func (s sameGateway) Gateway(context.Context, string) (Gateway, error) { return s.gw, nil }

// oneMerchant is Merchants for a service configured with a single merchant's notification key
// and merchant_no (Config.PlatformKey, Config.MerchantNo) and no registry: it has no clients.
type oneMerchant struct{ identity MerchantIdentity }

var errNoGateways = errors.New("this service has no Lakala clients (no merchant registry configured)")

func (m oneMerchant) Gateway(context.Context, string) (Gateway, error) { return nil, errNoGateways }

func (m oneMerchant) Identity(_ context.Context, id string) (MerchantIdentity, error) {
	if id != "" && id != m.identity.ID {
		return MerchantIdentity{}, fmt.Errorf("merchant %q is not known to this service", id)
	}
	return m.identity, nil
}

func (m oneMerchant) NotifyKeys(context.Context) ([]*rsa.PublicKey, error) {
	if m.identity.NotifyKey == nil {
		return nil, nil
	}
	return []*rsa.PublicKey{m.identity.NotifyKey}, nil
}

// Merchants is the service's merchant registry.
func (s *Service) Merchants() Merchants { return s.merchants }
