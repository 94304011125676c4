package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/loomipay/loomipay/shared/lakala"
)

// NotifyAttempt is one POST of a notification to the order's notify_url.
type NotifyAttempt struct {
	At time.Time `json:"at"`
	// TradeNo is the trade the notification tells of (an order can have several PAY
	// trades under FailedTradePayable).
	TradeNo string `json:"trade_no"`
	// Copy is 1, or 2 for the second copy DuplicateNotify sends.
	Copy       int    `json:"copy"`
	Forged     bool   `json:"forged,omitempty"`
	StatusCode int    `json:"status_code,omitempty"`
	Acked      bool   `json:"acked"`
	Error      string `json:"error,omitempty"`
}

// legacyNotification is the older camelCase notification that Lakala's published
// sample uses (lakala-testdata/notify-sample-body.json).
type legacyNotification struct {
	PayOrderNo            string  `json:"payOrderNo"`
	MerchantOrderNo       string  `json:"merchantOrderNo"`
	OrderInfo             string  `json:"orderInfo"`
	MerchantNo            string  `json:"merchantNo"`
	TermID                string  `json:"termId"`
	TradeMerchantNo       string  `json:"tradeMerchantNo"`
	TradeTermID           string  `json:"tradeTermId"`
	ChannelID             string  `json:"channelId"`
	Currency              string  `json:"currency"`
	Amount                int64   `json:"amount"`
	TradeType             string  `json:"tradeType"`
	PayStatus             string  `json:"payStatus"`
	NotifyStatus          int     `json:"notifyStatus"`
	OrderCreateTime       string  `json:"orderCreateTime"`
	OrderEfficientTime    string  `json:"orderEfficientTime"`
	ExtendField           *string `json:"extendField"`
	PayTime               string  `json:"payTime"`
	Remark                string  `json:"remark"`
	NoticeNum             int     `json:"noticeNum"`
	Sign                  *string `json:"sign"`
	NotifyURL             *string `json:"notifyUrl"`
	NotifyMode            string  `json:"notifyMode"`
	PayInfo               string  `json:"payInfo"`
	LklOrderNo            string  `json:"lklOrderNo"`
	PayerID1              string  `json:"payerId1"`
	TradeTime             string  `json:"tradeTime"`
	AccountChannelOrderNo string  `json:"accountChannelOrderNo"`
	ActualPayAmount       int64   `json:"actualPayAmount"`
	LogNo                 string  `json:"logNo"`
}

// legacyTime is the ISO form the legacy sample uses: 2021-09-06T05:19:43.000+00:00.
func legacyTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000-07:00")
}

func notificationBody(o *order, trade lakala.OrderTradeInfo, now time.Time, legacy bool) ([]byte, error) {
	if legacy {
		return json.Marshal(legacyNotification{
			PayOrderNo:            o.PayOrderNo,
			MerchantOrderNo:       o.OutOrderNo,
			OrderInfo:             o.OrderInfo,
			MerchantNo:            o.MerchantNo,
			TermID:                o.TermNo,
			TradeMerchantNo:       o.MerchantNo,
			TradeTermID:           o.TermNo,
			ChannelID:             o.CreateResult.ChannelID,
			Currency:              "156",
			Amount:                o.TotalAmount,
			TradeType:             trade.TradeType,
			PayStatus:             trade.TradeStatus,
			OrderCreateTime:       legacyTime(o.CreatedAt),
			OrderEfficientTime:    legacyTime(o.ExpiresAt),
			PayTime:               legacyTime(now),
			NoticeNum:             1,
			NotifyMode:            "2",
			PayInfo:               fmt.Sprintf("1#1#%s#0#%s", trade.PayMode, trade.AccTradeNo),
			LklOrderNo:            trade.TradeNo,
			PayerID1:              trade.UserID1,
			TradeTime:             trade.TradeTime,
			AccountChannelOrderNo: trade.AccTradeNo,
			ActualPayAmount:       int64(trade.PayerAmount),
			LogNo:                 trade.LogNo,
		})
	}
	return json.Marshal(lakala.CashierNotification{
		PayOrderNo:         o.PayOrderNo,
		OutOrderNo:         o.OutOrderNo,
		MerchantNo:         o.MerchantNo,
		TermNo:             o.TermNo,
		OrderStatus:        o.Status,
		TotalAmount:        lakala.Fen(o.TotalAmount),
		OrderCreateTime:    lakala.FormatTime(o.CreatedAt),
		OrderEfficientTime: lakala.FormatTime(o.ExpiresAt),
		OrderInfo:          o.OrderInfo,
		OrderTradeInfo:     trade,
	})
}

// payForeignTwin plays another merchant who created a cashier order with o's out_order_no,
// amount and notify_url and paid it: its paid notification, signed with the one platform key,
// goes to o's notify_url. The twin lives apart from our orders (queries never see it). It reports
// whether a notification is on its way.
func (s *Sandbox) payForeignTwin(ctx context.Context, tx pgx.Tx, o *order, faults Faults, now time.Time) (bool, error) {
	payOrderNo, err := s.nextID(ctx, tx, lakala.FormatTime(now)[2:8], 23)
	if err != nil {
		return false, err
	}
	twin := &order{
		OutOrderNo: o.OutOrderNo, PayOrderNo: payOrderNo, MerchantNo: ForeignMerchantNo,
		TermNo: "F0000001", TotalAmount: o.TotalAmount, OrderInfo: o.OrderInfo, NotifyURL: o.NotifyURL,
		PayMode: o.PayMode, Status: lakala.OrderStatusPaid, CreatedAt: now, ExpiresAt: o.ExpiresAt,
	}
	twin.CreateResult.ChannelID = "95"
	logNo, err := s.nextID(ctx, tx, "66", 14)
	if err != nil {
		return false, err
	}
	trade := lakala.OrderTradeInfo{
		TradeNo: lakala.FormatTime(now)[:8] + logNo, LogNo: logNo, TradeType: lakala.TradeTypePay, TradeStatus: lakala.TradeStatusSuccess,
		TradeAmount: lakala.Fen(o.TotalAmount), PayerAmount: lakala.Fen(o.TotalAmount), TradeTime: lakala.FormatTime(now),
		PayMode: o.PayMode, BusiType: "SCPAY",
	}
	twin.Trades = []lakala.OrderTradeInfo{trade}
	twin.PayTrade = &twin.Trades[0]
	b, err := json.Marshal(twin)
	if err != nil {
		return false, err
	}
	if _, err := tx.Exec(ctx, s.sql(`INSERT INTO lkl.foreign_orders (pay_order_no, state) VALUES ($1, $2)`), twin.PayOrderNo, b); err != nil {
		return false, err
	}
	body, err := notificationBody(twin, trade, now, faults.LegacyNotifyForm)
	if err != nil {
		return false, err
	}
	s.log.Info("sandbox: another merchant paid a cashier order with our number", "out_order_no", o.OutOrderNo, "merchant_no", ForeignMerchantNo)
	return s.enqueue(ctx, tx, twin, true, body, trade.TradeNo, faults, now)
}

// enqueue records a notification to send (in the transaction of the change it tells of), due
// after Faults.NotifyDelay, and reports whether one is on its way (not under DropNotify).
func (s *Sandbox) enqueue(ctx context.Context, tx pgx.Tx, o *order, foreign bool, body []byte, tradeNo string, faults Faults, now time.Time) (bool, error) {
	if faults.DropNotify {
		o.NotifyDropped = true
		s.log.Info("sandbox dropped a notification", "out_order_no", o.OutOrderNo)
		return false, nil
	}
	copies := 1
	if faults.DuplicateNotify {
		copies = 2
	}
	_, err := tx.Exec(ctx, s.sql(`INSERT INTO lkl.deliveries (merchant_no, out_order_no, pay_order_no, foreign_twin, trade_no, notify_url, body,
			forge, resign, copies, next_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`),
		o.MerchantNo, o.OutOrderNo, o.PayOrderNo, foreign, tradeNo, o.NotifyURL, body, faults.ForgeNotify, faults.ResignNotifyRetries,
		copies, now.Add(faults.NotifyDelay))
	return err == nil, err
}

// deliverSoon has what is due delivered: at once, before the caller answers, when delivering
// inline (a Lambda function, where nothing may outlive the call); else by the delivering
// goroutine, woken.
func (s *Sandbox) deliverSoon(ctx context.Context) {
	if !s.inline {
		select {
		case s.wake <- struct{}{}:
		default:
		}
		return
	}
	if _, err := s.DeliverDue(ctx); err != nil {
		s.log.Warn("sandbox: delivering notifications failed; they are retried when next due", "error", err)
	}
}

// deliveryLease is how long a delivery being attempted is not attempted by anyone else: a
// process that dies meanwhile leaves it to the next after it.
const deliveryLease = time.Minute

// delivery is one notification on its way, as claimed for an attempt.
type delivery struct {
	id                                 int64
	merchantNo, outOrderNo, payOrderNo string
	foreign                            bool
	tradeNo, notifyURL                 string
	body                               []byte
	forge, resign                      bool
	auth                               string // the first attempt's signature, reused unless resign
	copies, copy, attempts             int
}

// claim leases up to limit deliveries due at due.
func (s *Sandbox) claim(ctx context.Context, due time.Time, limit int) ([]delivery, error) {
	now := s.now()
	rows, err := s.db.Query(ctx, s.sql(`UPDATE lkl.deliveries SET leased_until = $2
		WHERE id IN (SELECT id FROM lkl.deliveries
			WHERE state = 'pending' AND next_at <= $4 AND (leased_until IS NULL OR leased_until < $1)
			ORDER BY next_at, id LIMIT $3 FOR UPDATE SKIP LOCKED)
		RETURNING id, merchant_no, out_order_no, pay_order_no, foreign_twin, trade_no, notify_url, body, forge, resign, auth, copies, copy, attempts`),
		now, now.Add(deliveryLease), limit, due)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (d delivery, err error) {
		err = row.Scan(&d.id, &d.merchantNo, &d.outOrderNo, &d.payOrderNo, &d.foreign, &d.tradeNo, &d.notifyURL, &d.body,
			&d.forge, &d.resign, &d.auth, &d.copies, &d.copy, &d.attempts)
		return d, err
	})
}

// DeliverDue attempts every notification due now, once each, at once, and waits for them; a
// failed attempt is retried when Lakala's schedule says (by the next DeliverDue: the sandbox
// function's schedule, or the next payer's action). It returns how many it attempted.
func (s *Sandbox) DeliverDue(ctx context.Context) (int, error) {
	total := 0
	start := s.now() // a retry this call schedules is the next call's
	s.prune(ctx)
	for {
		ds, err := s.claim(ctx, start, 50)
		if err != nil || len(ds) == 0 {
			return total, err
		}
		var wg sync.WaitGroup
		for _, d := range ds {
			wg.Go(func() { s.attempt(ctx, d) })
		}
		wg.Wait()
		total += len(ds)
	}
}

// keepHistory is how long the call log and the notifications delivered (or given up) are kept.
const keepHistory = 30 * 24 * time.Hour

// prune drops what is older than keepHistory of the call log and of the deliveries that ended, a
// bounded batch of each: a sandbox stage runs for months.
func (s *Sandbox) prune(ctx context.Context) {
	before := s.now().Add(-keepHistory)
	for _, q := range []string{
		`DELETE FROM lkl.calls WHERE id IN (SELECT id FROM lkl.calls WHERE at < $1 LIMIT 1000)`,
		`DELETE FROM lkl.deliveries WHERE id IN (SELECT id FROM lkl.deliveries WHERE state <> 'pending' AND created_at < $1 LIMIT 1000)`,
	} {
		if _, err := s.db.Exec(ctx, s.sql(q), before); err != nil {
			s.log.Warn("sandbox cannot prune its history", "error", err)
		}
	}
}

// deliverLoop delivers notifications as they fall due, each on a goroutine of its own (a slow
// notify_url holds up no other), until Close.
func (s *Sandbox) deliverLoop() {
	defer s.workers.Done()
	s.prune(s.stop)
	for s.stop.Err() == nil {
		ds, err := s.claim(s.stop, s.now(), 50)
		if err != nil && s.stop.Err() == nil {
			s.log.Warn("sandbox cannot claim notifications", "error", err)
		}
		for _, d := range ds {
			s.workers.Go(func() { s.attempt(s.stop, d) })
		}
		if len(ds) == 50 {
			continue
		}
		wait := time.Second
		var next *time.Time
		if err := s.db.QueryRow(s.stop, s.sql(`SELECT min(greatest(next_at, coalesce(leased_until, next_at))) FROM lkl.deliveries WHERE state = 'pending'`)).Scan(&next); err == nil && next != nil {
			wait = min(wait, max(time.Millisecond, next.Sub(s.now())))
		}
		t := time.NewTimer(wait)
		select {
		case <-s.stop.Done():
		case <-s.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// WaitNotifications waits until every notification recorded so far has been acknowledged,
// dropped or given up on, so tests can inspect the outcome without sleeping. With Lakala's real
// retry schedule that can take hours: pass a deadline.
func (s *Sandbox) WaitNotifications(ctx context.Context) error {
	for {
		var pending int
		err := s.db.QueryRow(ctx, s.sql(`SELECT count(*) FROM lkl.deliveries WHERE state = 'pending'`)).Scan(&pending)
		if err == nil && pending == 0 {
			return nil
		}
		t := time.NewTimer(10 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			if err != nil {
				return fmt.Errorf("sandbox: notifications: %w", err)
			}
			return fmt.Errorf("sandbox: %d notifications still on their way: %w", pending, ctx.Err())
		case <-t.C:
		}
	}
}

// authorization signs d for an attempt: once for all attempts and copies (whether Lakala
// re-signs retries is unconfirmed, and the service must cope with the old timestamp), or
// afresh each time under Faults.ResignNotifyRetries.
func (s *Sandbox) authorization(d *delivery) (string, error) {
	if d.auth != "" && !d.resign {
		return d.auth, nil
	}
	signed := d.body
	if d.forge {
		// Signing other bytes gives a well-formed header that does not verify.
		signed = append(bytes.Clone(d.body), ' ')
	}
	auth, err := lakala.SignNotification(s.platformKey, signed, s.now())
	if err != nil {
		return "", err
	}
	d.auth = auth
	return auth, nil
}

// attempt posts one attempt of a delivery and records what came of it: on the order (its
// notify_attempts), and on the delivery (done, the next copy, the next retry, or given up).
func (s *Sandbox) attempt(ctx context.Context, d delivery) {
	auth, err := s.authorization(&d)
	if err != nil {
		s.log.Error("sandbox cannot sign notification", "error", err)
		return
	}
	rec := s.post(ctx, d.notifyURL, auth, d.body)
	if ctx.Err() != nil {
		return // stopped: the lease runs out and a later process attempts it again
	}
	rec.TradeNo, rec.Copy, rec.Forged = d.tradeNo, d.copy, d.forge
	d.attempts++
	s.log.Info("sandbox notification attempt", "out_order_no", d.outOrderNo, "copy", d.copy,
		"attempt", d.attempts, "status", rec.StatusCode, "acked", rec.Acked, "error", rec.Error)
	state, next := "pending", s.now()
	switch {
	case rec.Acked && d.copy < d.copies, !rec.Acked && d.attempts > len(s.retryDelays) && d.copy < d.copies:
		// The next copy (DuplicateNotify) follows this one, with the same signature.
		d.copy, d.attempts = d.copy+1, 0
	case rec.Acked:
		state = "acked"
	case d.attempts > len(s.retryDelays):
		state = "given_up"
		s.log.Warn("sandbox gave up on a notification", "out_order_no", d.outOrderNo, "attempts", d.attempts)
	default:
		next = next.Add(s.retryDelays[d.attempts-1])
	}
	ctx = context.WithoutCancel(ctx)
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		if !d.foreign {
			o, err := s.lockOrder(ctx, tx, d.merchantNo, d.outOrderNo)
			if err != nil {
				return err
			}
			if o != nil {
				o.NotifyAttempts = append(o.NotifyAttempts, rec)
				o.NotifyAcked = o.NotifyAcked || rec.Acked
				if err := s.saveOrder(ctx, tx, o); err != nil {
					return err
				}
			}
		}
		_, err := tx.Exec(ctx, s.sql(`UPDATE lkl.deliveries SET state = $2, next_at = $3, auth = $4, copy = $5, attempts = $6, leased_until = NULL
			WHERE id = $1`), d.id, state, next, d.auth, d.copy, d.attempts)
		return err
	})
	if err != nil {
		s.log.Error("sandbox cannot record a notification attempt", "error", err)
		return
	}
	if state == "pending" {
		s.deliverLaterOrNow(next)
	}
}

// deliverLaterOrNow wakes the delivering goroutine for a delivery due at once (a next copy).
func (s *Sandbox) deliverLaterOrNow(next time.Time) {
	if !s.inline && !next.After(s.now()) {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

func (s *Sandbox) post(ctx context.Context, notifyURL, auth string, body []byte) NotifyAttempt {
	rec := NotifyAttempt{At: s.now()}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, notifyURL, bytes.NewReader(body))
	if err != nil {
		rec.Error = err.Error()
		return rec
	}
	req.Header.Set("Authorization", auth)
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		rec.Error = err.Error()
		return rec
	}
	defer resp.Body.Close()
	rec.StatusCode = resp.StatusCode
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		rec.Error = err.Error()
		return rec
	}
	var ack struct {
		Code string `json:"code"`
	}
	rec.Acked = resp.StatusCode == http.StatusOK && json.Unmarshal(answer, &ack) == nil && ack.Code == "SUCCESS"
	return rec
}
