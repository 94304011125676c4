package ops

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/loomipay/loomipay/shared/lakala"
	"github.com/loomipay/loomipay/shared/merchants"
	"github.com/loomipay/loomipay/shared/pay"
	"github.com/loomipay/loomipay/shared/postgres"
)

// The merchants: Lakala's identities for money, each app bound to one. A merchant's key and
// Lakala's certificates are references (Secrets Manager ARNs, or files for the local stack), so
// nothing a person reads here or in the audit log is a secret. The default merchant is the
// configuration's (LAKALA_* variables): listed with the identity this process was configured
// with, and changed where it is configured, never here.

// WithMerchants gives the operations layer the merchant registry: to check a merchant's
// references before it is added or its key rotated, and to show the default merchant.
func (o *Ops) WithMerchants(r *merchants.Registry) *Ops {
	o.merchants = r
	return o
}

var errNoRegistry = errors.New("the operations layer was built without the merchant registry")

// Merchant is a merchant as operators see it (never a key: references only).
type Merchant struct {
	ID string `json:"id"`
	// Configured: the default merchant, whose identity and key are the LAKALA_* variables (shown
	// as this process reads them).
	Configured      bool       `json:"configured"`
	LakalaAppID     string     `json:"appid"`
	SerialNo        string     `json:"serial_no"`
	MerchantNo      string     `json:"merchant_no"`
	TermNo          string     `json:"term_no"`
	VposID          string     `json:"vpos_id"`
	PrivateKeyRef   string     `json:"private_key_ref,omitempty"`
	PlatformCertRef string     `json:"platform_cert_ref,omitempty"`
	NotifyCertRef   string     `json:"notify_cert_ref,omitempty"`
	KeyVersion      int        `json:"key_version"`
	KeyRotatedAt    *time.Time `json:"key_rotated_at,omitempty"`
	CreatedAt       time.Time  `json:"created_at"`
	// Apps bound to it now, and the orders created with it (whatever their app is bound to now).
	Apps   []string `json:"apps"`
	Orders int64    `json:"orders"`
}

// merchantFacts is what the audit log records of a merchant: its identity and references.
type merchantFacts struct {
	ID              string `json:"id"`
	LakalaAppID     string `json:"appid"`
	SerialNo        string `json:"serial_no"`
	MerchantNo      string `json:"merchant_no"`
	TermNo          string `json:"term_no"`
	VposID          string `json:"vpos_id"`
	PrivateKeyRef   string `json:"private_key_ref"`
	PlatformCertRef string `json:"platform_cert_ref"`
	NotifyCertRef   string `json:"notify_cert_ref,omitempty"`
	KeyVersion      int    `json:"key_version"`
}

func factsOf(m postgres.Merchant) merchantFacts {
	return merchantFacts{ID: m.ID, LakalaAppID: m.LakalaAppID, SerialNo: m.SerialNo, MerchantNo: m.MerchantNo, TermNo: m.TermNo,
		VposID: m.VposID, PrivateKeyRef: m.PrivateKeyRef, PlatformCertRef: m.PlatformCertRef, NotifyCertRef: m.NotifyCertRef, KeyVersion: m.KeyVersion}
}

func (o *Ops) merchantOf(m postgres.Merchant) Merchant {
	out := Merchant{ID: m.ID, Configured: m.Configured, LakalaAppID: m.LakalaAppID, SerialNo: m.SerialNo, MerchantNo: m.MerchantNo,
		TermNo: m.TermNo, VposID: m.VposID, PrivateKeyRef: m.PrivateKeyRef, PlatformCertRef: m.PlatformCertRef,
		NotifyCertRef: m.NotifyCertRef, KeyVersion: m.KeyVersion, KeyRotatedAt: m.KeyRotatedAt, CreatedAt: m.CreatedAt, Apps: []string{}}
	if m.Configured && o.merchants != nil {
		d := o.merchants.Default()
		out.LakalaAppID, out.SerialNo, out.MerchantNo, out.TermNo, out.VposID = d.AppID, d.SerialNo, d.MerchantNo, d.TermNo, d.VposID
	}
	return out
}

// Merchants lists the merchants, the default first, with their apps and order counts.
func (o *Ops) Merchants(ctx context.Context, a Actor) ([]Merchant, error) {
	if err := o.authorize(ctx, a, RoleViewer, "merchant.list", ""); err != nil {
		return nil, err
	}
	rows, err := o.store.Merchants(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Merchant, len(rows))
	idx := map[string]int{}
	for i, m := range rows {
		out[i] = o.merchantOf(m)
		idx[m.ID] = i
	}
	pool := o.store.Pool()
	apps, err := pool.Query(ctx, `SELECT merchant_id, app_id FROM apps ORDER BY app_id`)
	if err != nil {
		return nil, fmt.Errorf("merchants: %w", err)
	}
	var merchantID, appID string
	if _, err := pgx.ForEachRow(apps, []any{&merchantID, &appID}, func() error {
		if i, ok := idx[merchantID]; ok {
			out[i].Apps = append(out[i].Apps, appID)
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("merchants: %w", err)
	}
	counts, err := pool.Query(ctx, `SELECT merchant_id, count(*) FROM payment_orders GROUP BY merchant_id`)
	if err != nil {
		return nil, fmt.Errorf("merchants: %w", err)
	}
	var n int64
	if _, err := pgx.ForEachRow(counts, []any{&merchantID, &n}, func() error {
		if i, ok := idx[merchantID]; ok {
			out[i].Orders = n
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("merchants: %w", err)
	}
	return out, nil
}

// Merchant shows one merchant.
func (o *Ops) Merchant(ctx context.Context, a Actor, id string) (Merchant, error) {
	all, err := o.Merchants(ctx, a)
	if err != nil {
		return Merchant{}, err
	}
	for _, m := range all {
		if m.ID == id {
			return m, nil
		}
	}
	return Merchant{}, pay.Errorf(pay.KindNotFound, pay.CodeNotFound, "no merchant %q (loomipay merchants list)", id)
}

// NewMerchant is what an operator gives to add a merchant.
type NewMerchant struct {
	ID                                            string
	LakalaAppID, SerialNo, MerchantNo, TermNo     string
	VposID                                        string
	PrivateKeyRef, PlatformCertRef, NotifyCertRef string
}

var merchantID = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// check refuses a merchant Lakala would refuse, before anything is written: its identity's
// lengths (those of 统一退货, the stricter API, for merchant_no and term_no), and references the
// deployment's functions could not read, or that do not hold a key and certificates that fit.
func (o *Ops) checkMerchant(ctx context.Context, m postgres.Merchant) error {
	var problems []error
	if !merchantID.MatchString(m.ID) {
		problems = append(problems, pay.Invalid("id", "a merchant id is 1 to 64 letters, digits, '_', '.' or '-', not %q", m.ID))
	}
	for _, f := range []struct {
		name, value string
		max         int
		required    bool
	}{
		{"appid", m.LakalaAppID, 32, true}, {"serial_no", m.SerialNo, 64, true},
		{"merchant_no", m.MerchantNo, lakala.MaxRfdMerchantNo, true}, {"term_no", m.TermNo, lakala.MaxRfdTermNo, true},
		{"vpos_id", m.VposID, lakala.MaxVposID, false},
	} {
		switch {
		case f.required && f.value == "":
			problems = append(problems, pay.Invalid(f.name, "%s is required", f.name))
		case len(f.value) > f.max:
			problems = append(problems, pay.Invalid(f.name, "%s %q is %d bytes; Lakala takes at most %d", f.name, f.value, len(f.value), f.max))
		}
	}
	if m.VposID == "" && o.merchants.Stage() != "dev" && o.merchants.Stage() != "" {
		problems = append(problems, pay.Invalid("vpos_id", "vpos_id is required outside STAGE=dev: Lakala requires it on every cashier order outside combined orders"))
	}
	if d := o.merchants.Default(); m.MerchantNo == d.MerchantNo && m.TermNo == d.TermNo {
		problems = append(problems, pay.Errorf(pay.KindConflict, "merchant_exists",
			"merchant_no %s with term_no %s is the default merchant (LAKALA_MERCHANT_NO, LAKALA_TERM_NO)", m.MerchantNo, m.TermNo))
	}
	if err := o.merchants.CheckRefs(m); err != nil {
		problems = append(problems, pay.Invalid("references", "%v", err))
	}
	if len(problems) > 0 {
		return problems[0]
	}
	if err := o.merchants.Check(ctx, m); err != nil {
		return pay.Invalid("references", "%v", err)
	}
	return nil
}

// AddMerchant adds a merchant (admin, audited). Its references are read and checked first: the
// key must parse, the certificates too.
func (o *Ops) AddMerchant(ctx context.Context, a Actor, in NewMerchant) (Merchant, error) {
	subject := "merchant:" + in.ID
	if err := o.authorize(ctx, a, RoleAdmin, "merchant.add", subject); err != nil {
		return Merchant{}, err
	}
	if o.merchants == nil {
		return Merchant{}, errNoRegistry
	}
	m := postgres.Merchant{ID: in.ID, LakalaAppID: in.LakalaAppID, SerialNo: in.SerialNo, MerchantNo: in.MerchantNo, TermNo: in.TermNo,
		VposID: in.VposID, PrivateKeyRef: in.PrivateKeyRef, PlatformCertRef: in.PlatformCertRef, NotifyCertRef: in.NotifyCertRef, KeyVersion: 1}
	if err := o.checkMerchant(ctx, m); err != nil {
		return Merchant{}, err
	}
	var added postgres.Merchant
	_, err := o.store.InTx(ctx, func(tx *postgres.Tx) error {
		var err error
		if added, err = tx.AddMerchant(ctx, m); err != nil {
			return err
		}
		return auditTx(ctx, tx, a, "merchant.add", subject, nil, factsOf(added), "")
	})
	if errors.Is(err, postgres.ErrExists) {
		return Merchant{}, pay.Errorf(pay.KindConflict, "merchant_exists", "a merchant %q, or one with merchant_no %s and term_no %s, exists already", in.ID, in.MerchantNo, in.TermNo)
	}
	if err != nil {
		return Merchant{}, err
	}
	return o.merchantOf(added), nil
}

// KeyRotation is a merchant's new key: its certificate's serial number and the reference to it,
// and Lakala's certificates when they change too.
type KeyRotation struct {
	SerialNo, PrivateKeyRef string
	PlatformCertRef         string  // empty: unchanged
	NotifyCertRef           *string // nil: unchanged; "": the platform certificate's
}

// RotateMerchantKey puts a merchant's new key in force (admin, audited). Every process signs
// with it within the registry's TTL — for every call, about orders the old key created too
// (docs/DECISIONS.md, "Merchants"): Lakala must accept the new certificate before, and the old
// one until after. The default merchant's key is the LAKALA_PRIVATE_KEY secret: rotated there.
func (o *Ops) RotateMerchantKey(ctx context.Context, a Actor, id string, k KeyRotation, note string) (Merchant, error) {
	subject := "merchant:" + id
	if err := o.authorize(ctx, a, RoleAdmin, "merchant.rotate_key", subject); err != nil {
		return Merchant{}, err
	}
	if o.merchants == nil {
		return Merchant{}, errNoRegistry
	}
	current, err := o.store.Merchant(ctx, id)
	if errors.Is(err, pay.ErrNotFound) {
		return Merchant{}, pay.Errorf(pay.KindNotFound, pay.CodeNotFound, "no merchant %q (loomipay merchants list)", id)
	}
	if err != nil {
		return Merchant{}, err
	}
	if current.Configured {
		return Merchant{}, pay.Errorf(pay.KindConflict, "configured_merchant",
			"the default merchant's key is LAKALA_PRIVATE_KEY (its secret) and its serial LAKALA_SERIAL_NO: rotate them where they are configured (docs/DEPLOYING.md)")
	}
	if k.SerialNo == "" || k.PrivateKeyRef == "" {
		return Merchant{}, pay.Invalid("serial_no", "a rotation needs the new certificate's serial_no and the reference to the new private key")
	}
	if k.SerialNo == current.SerialNo {
		return Merchant{}, pay.Invalid("serial_no", "serial_no %s is the key in force: a new key comes with a new certificate", k.SerialNo)
	}
	next := current
	next.SerialNo, next.PrivateKeyRef = k.SerialNo, k.PrivateKeyRef
	if k.PlatformCertRef != "" {
		next.PlatformCertRef = k.PlatformCertRef
	}
	if k.NotifyCertRef != nil {
		next.NotifyCertRef = *k.NotifyCertRef
	}
	if err := o.merchants.CheckRefs(next); err != nil {
		return Merchant{}, pay.Invalid("references", "%v", err)
	}
	if err := o.merchants.Check(ctx, next); err != nil {
		return Merchant{}, pay.Invalid("references", "%v", err)
	}
	var after postgres.Merchant
	_, err = o.store.InTx(ctx, func(tx *postgres.Tx) error {
		var before postgres.Merchant
		var err error
		before, after, err = tx.RotateMerchantKey(ctx, id, postgres.MerchantKey{SerialNo: k.SerialNo, PrivateKeyRef: k.PrivateKeyRef,
			PlatformCertRef: k.PlatformCertRef, NotifyCertRef: k.NotifyCertRef}, o.now())
		if err != nil {
			return err
		}
		return auditTx(ctx, tx, a, "merchant.rotate_key", subject, factsOf(before), factsOf(after), note)
	})
	if err != nil {
		return Merchant{}, err
	}
	o.merchants.Forget(id)
	return o.merchantOf(after), nil
}

// BindApp binds an app to a merchant (admin, audited): its orders from now on are the merchant's;
// its earlier orders, and their refunds, keep the merchant they were created with.
func (o *Ops) BindApp(ctx context.Context, a Actor, appID, merchantID, note string) error {
	subject := "app:" + appID
	if err := o.authorize(ctx, a, RoleAdmin, "app.bind_merchant", subject); err != nil {
		return err
	}
	if _, err := o.store.Merchant(ctx, merchantID); errors.Is(err, pay.ErrNotFound) {
		return pay.Errorf(pay.KindNotFound, pay.CodeNotFound, "no merchant %q (loomipay merchants list)", merchantID)
	} else if err != nil {
		return err
	}
	_, err := o.store.InTx(ctx, func(tx *postgres.Tx) error {
		before, err := tx.BindApp(ctx, appID, merchantID)
		if err != nil {
			return err
		}
		return auditTx(ctx, tx, a, "app.bind_merchant", subject, map[string]string{"merchant_id": before}, map[string]string{"merchant_id": merchantID}, note)
	})
	if errors.Is(err, pay.ErrNotFound) {
		return pay.Errorf(pay.KindNotFound, pay.CodeNotFound, "no app %q", appID)
	}
	return err
}
