package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

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
			PayOrderNo:            o.payOrderNo,
			MerchantOrderNo:       o.outOrderNo,
			OrderInfo:             o.orderInfo,
			MerchantNo:            o.merchantNo,
			TermID:                o.termNo,
			TradeMerchantNo:       o.merchantNo,
			TradeTermID:           o.termNo,
			ChannelID:             o.createResult.ChannelID,
			Currency:              "156",
			Amount:                o.totalAmount,
			TradeType:             trade.TradeType,
			PayStatus:             trade.TradeStatus,
			OrderCreateTime:       legacyTime(o.createdAt),
			OrderEfficientTime:    legacyTime(o.expiresAt),
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
		PayOrderNo:         o.payOrderNo,
		OutOrderNo:         o.outOrderNo,
		MerchantNo:         o.merchantNo,
		TermNo:             o.termNo,
		OrderStatus:        o.status,
		TotalAmount:        lakala.Fen(o.totalAmount),
		OrderCreateTime:    lakala.FormatTime(o.createdAt),
		OrderEfficientTime: lakala.FormatTime(o.expiresAt),
		OrderInfo:          o.orderInfo,
		OrderTradeInfo:     trade,
	})
}

// payForeignTwin plays another merchant who created a cashier order with o's out_order_no,
// amount and notify_url and paid it: its paid notification, signed with the one platform key,
// goes to o's notify_url. The twin lives apart from our orders (queries never see it). The
// caller holds s.mu.
func (s *Sandbox) payForeignTwin(o *order, faults Faults, now time.Time) {
	twin := &order{
		outOrderNo: o.outOrderNo, payOrderNo: s.nextID(lakala.FormatTime(now)[2:8], 23), merchantNo: ForeignMerchantNo,
		termNo: "F0000001", totalAmount: o.totalAmount, orderInfo: o.orderInfo, notifyURL: o.notifyURL,
		payMode: o.payMode, status: lakala.OrderStatusPaid, createdAt: now, expiresAt: o.expiresAt,
	}
	twin.createResult.ChannelID = "95"
	logNo := s.nextID("66", 14)
	trade := lakala.OrderTradeInfo{
		TradeNo: lakala.FormatTime(now)[:8] + logNo, LogNo: logNo, TradeType: lakala.TradeTypePay, TradeStatus: lakala.TradeStatusSuccess,
		TradeAmount: lakala.Fen(o.totalAmount), PayerAmount: lakala.Fen(o.totalAmount), TradeTime: lakala.FormatTime(now),
		PayMode: o.payMode, BusiType: "SCPAY",
	}
	twin.trades = []lakala.OrderTradeInfo{trade}
	twin.payTrade = &twin.trades[0]
	s.foreign = append(s.foreign, twin)
	body, err := notificationBody(twin, trade, now, faults.LegacyNotifyForm)
	if err != nil {
		s.log.Error("sandbox cannot build a foreign notification", "error", err)
		return
	}
	s.log.Info("sandbox: another merchant paid a cashier order with our number", "out_order_no", o.outOrderNo, "merchant_no", ForeignMerchantNo)
	s.startDelivery(twin, body, trade.TradeNo, faults)
}

// startDelivery sends body to the order's notify_url in the background; the caller
// holds s.mu, which also orders workers.Add before Close's Wait.
func (s *Sandbox) startDelivery(o *order, body []byte, tradeNo string, faults Faults) {
	if faults.DropNotify {
		o.notifyDropped = true
		s.log.Info("sandbox dropped a notification", "out_order_no", o.outOrderNo)
		return
	}
	if s.stop.Err() != nil {
		return
	}
	s.workers.Add(1)
	s.inflight++
	if s.inflight == 1 {
		s.idle = make(chan struct{})
	}
	go func() {
		defer s.workers.Done()
		defer s.deliveryDone()
		if faults.NotifyDelay > 0 && !s.wait(faults.NotifyDelay) {
			return
		}
		copies := 1
		if faults.DuplicateNotify {
			copies = 2
		}
		d := delivery{o: o, body: body, tradeNo: tradeNo, forge: faults.ForgeNotify, resign: faults.ResignNotifyRetries}
		for c := 1; c <= copies; c++ {
			if !s.deliver(&d, c) {
				return
			}
		}
	}()
}

func (s *Sandbox) deliveryDone() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inflight--
	if s.inflight == 0 {
		close(s.idle)
	}
}

// WaitNotifications waits until every notification started so far has been
// acknowledged, dropped or given up on, so tests can inspect the outcome without
// sleeping. With Lakala's real retry schedule that can take hours: pass a deadline.
func (s *Sandbox) WaitNotifications(ctx context.Context) error {
	s.mu.Lock()
	idle := s.idle
	busy := s.inflight > 0
	s.mu.Unlock()
	if !busy {
		return nil
	}
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("sandbox: notifications still in flight: %w", ctx.Err())
	}
}

// wait sleeps for d and reports false if the sandbox closed meanwhile.
func (s *Sandbox) wait(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.stop.Done():
		return false
	}
}

// delivery is one notification on its way, with every copy and retry of it.
type delivery struct {
	o       *order
	body    []byte
	tradeNo string
	forge   bool
	resign  bool
	auth    string // the first attempt's signature, reused unless resign
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

// deliver posts one copy of a notification until it is acknowledged or the retry
// schedule runs out; it reports false only when the sandbox closed.
func (s *Sandbox) deliver(d *delivery, copyNo int) bool {
	o, body, forge := d.o, d.body, d.forge
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			if attempt > len(s.retryDelays) {
				s.log.Warn("sandbox gave up on a notification", "out_order_no", o.outOrderNo, "attempts", attempt)
				return true
			}
			if !s.wait(s.retryDelays[attempt-1]) {
				return false
			}
		}
		auth, err := s.authorization(d)
		if err != nil {
			s.log.Error("sandbox cannot sign notification", "error", err)
			return true
		}
		rec := s.post(o.notifyURL, auth, body)
		rec.TradeNo, rec.Copy, rec.Forged = d.tradeNo, copyNo, forge
		s.mu.Lock()
		o.notifyAttempts = append(o.notifyAttempts, rec)
		if rec.Acked {
			o.notifyAcked = true
		}
		s.mu.Unlock()
		s.log.Info("sandbox notification attempt", "out_order_no", o.outOrderNo, "copy", copyNo,
			"attempt", attempt+1, "status", rec.StatusCode, "acked", rec.Acked, "error", rec.Error)
		if rec.Acked {
			return true
		}
		if s.stop.Err() != nil {
			return false
		}
	}
}

func (s *Sandbox) post(notifyURL, auth string, body []byte) NotifyAttempt {
	rec := NotifyAttempt{At: s.now()}
	req, err := http.NewRequestWithContext(s.stop, http.MethodPost, notifyURL, bytes.NewReader(body))
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
