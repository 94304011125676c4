package ops

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/loomipay/loomipay/shared/pay"
)

// RepublishResult says what a republish did.
type RepublishResult struct {
	AppID     string    `json:"app_id"`
	From      time.Time `json:"from"`
	To        time.Time `json:"to"`
	Published int       `json:"published"`
	// OldestKept is the oldest result message still in the outbox (published ones are pruned
	// after the outbox retention); a range starting before it cannot be fully republished.
	OldestKept *time.Time `json:"oldest_kept,omitempty"`
	Warning    string     `json:"warning,omitempty"`
}

// maxRepublish bounds one republish; a larger range is split by the operator.
const maxRepublish = 200_000

// RepublishResults publishes again, in their original order, the result messages of an app
// written in [from, to) that were already published, from the outbox history: the same event_id
// and seq, so a consumer drops the ones it already has. It is for an app that lost its consumer
// group or its stream. Messages not yet published are left to the relay, which keeps each
// subject's messages in order.
func (o *Ops) RepublishResults(ctx context.Context, a Actor, appID string, from, to time.Time, note string) (RepublishResult, error) {
	subject := "app:" + appID
	if err := o.authorize(ctx, a, RoleOperator, "results.republish", subject); err != nil {
		return RepublishResult{}, err
	}
	if err := requireNote(note); err != nil {
		return RepublishResult{}, err
	}
	if !pay.ValidIdentifier(appID) {
		return RepublishResult{}, pay.Invalid("app_id", "app_id must be 1-64 characters of A-Z, a-z, 0-9, '_', '.', '-'")
	}
	if from.IsZero() || to.IsZero() || !from.Before(to) {
		return RepublishResult{}, pay.Invalid("from", "give a time range with from before to")
	}
	res := RepublishResult{AppID: appID, From: from, To: to}
	pool := o.store.Pool()
	if err := pool.QueryRow(ctx, `SELECT min(created_at) FROM outbox`).Scan(&res.OldestKept); err != nil {
		return res, fmt.Errorf("republish: %w", err)
	}
	if res.OldestKept != nil && from.Before(*res.OldestKept) && from.Before(o.now().Add(-o.OutboxRetention)) {
		res.Warning = fmt.Sprintf("the outbox keeps published messages for %s; nothing older than %s is left to republish",
			o.OutboxRetention, pay.FormatTime(*res.OldestKept))
	}
	var lastID int64
	for res.Published < maxRepublish {
		rows, err := pool.Query(ctx, `SELECT id, event_id::text, stream, fields FROM outbox
			WHERE coalesce(app_id, fields ->> 'app_id') = $1 AND created_at >= $2 AND created_at < $3
			  AND published_at IS NOT NULL AND id > $4
			ORDER BY id LIMIT 500`, appID, from, to, lastID)
		if err != nil {
			return res, fmt.Errorf("republish: %w", err)
		}
		var msgs []pay.ResultMessage
		for rows.Next() {
			var m pay.ResultMessage
			var fields []byte
			if err := rows.Scan(&lastID, &m.EventID, &m.Stream, &fields); err != nil {
				rows.Close()
				return res, err
			}
			if err := json.Unmarshal(fields, &m.Fields); err != nil {
				rows.Close()
				return res, fmt.Errorf("outbox message %s: %w", m.EventID, err)
			}
			msgs = append(msgs, m)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return res, err
		}
		if len(msgs) == 0 {
			break
		}
		if err := o.streams.PublishResults(ctx, msgs); err != nil {
			_ = o.audit(ctx, a, "results.republish", subject, "failed", nil, res, note+" (failed after "+fmt.Sprint(res.Published)+": "+err.Error()+")")
			return res, pay.Errorf(pay.KindUnavailable, pay.CodeUnavailable, "publishing to Redis failed after %d messages: %v", res.Published, err)
		}
		res.Published += len(msgs)
	}
	if res.Published >= maxRepublish {
		res.Warning = fmt.Sprintf("stopped after %d messages; republish the rest with a later from", res.Published)
	}
	if err := o.audit(ctx, a, "results.republish", subject, "ok", map[string]any{"from": from, "to": to}, res, note); err != nil {
		return res, err
	}
	return res, nil
}
