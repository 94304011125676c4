package console_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/loomipay/loomipay/shared/console"
	"github.com/loomipay/loomipay/shared/ops"
)

// TestMerchantsOnTheConsole: the Apps page names each app's merchant, and the overview shows each
// merchant's money of the day and its last hour of Lakala calls once there are several.
func TestMerchantsOnTheConsole(t *testing.T) {
	e := newEnv(t, console.Config{Dev: true})
	ctx := context.Background()
	root := ops.Actor{Name: "test", Role: ops.RoleAdmin, Via: "cli"}
	for _, app := range []string{"shop_a", "shop_b"} {
		if _, err := e.ops.CreateApp(ctx, root, app); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	at := now.UTC().Format(time.RFC3339Nano)
	if _, err := e.store.Pool().Exec(ctx, `
		INSERT INTO merchants (id, lakala_appid, serial_no, merchant_no, term_no, private_key_ref, platform_cert_ref)
			VALUES ('shop-b', 'OP1', '01', '822290070000002', 'T0000002', 'file:/k.pem', 'file:/c.pem');
		UPDATE apps SET merchant_id = 'shop-b' WHERE app_id = 'shop_b';
		INSERT INTO payment_orders (id, app_id, merchant_order_id, status, order_type, amount, currency, subject, gateway_trade_time, merchant_id) VALUES
			('01900000-0000-7000-8000-00000000c001', 'shop_a', 'A1', 'succeeded', 'payment', 1000, 'CNY', 's', '`+at+`', 'default'),
			('01900000-0000-7000-8000-00000000c002', 'shop_b', 'B1', 'succeeded', 'payment', 2500, 'CNY', 's', '`+at+`', 'shop-b');
		INSERT INTO gateway_calls (operation, out_no, outcome, duration_ms, called_at, merchant_id) VALUES
			('query', 'x', 'ok', 1, '`+at+`', 'shop-b'), ('query', 'y', 'unknown', 1, '`+at+`', 'shop-b'), ('create', 'z', 'ok', 1, '`+at+`', 'default')`); err != nil {
		t.Fatal(err)
	}
	b := e.browser(t)
	b.login(operatorToken(t, e, "vic", ops.RoleViewer))

	_, apps := b.get("/console/apps")
	for app, merchant := range map[string]string{"shop_a": "default", "shop_b": "shop-b"} {
		card := apps[strings.Index(apps, `id="app-`+app+`"`):]
		if !strings.Contains(card[:strings.Index(card, "</p>")], `<code class="merchant">`+merchant+`</code>`) {
			t.Errorf("the Apps page does not name %s's merchant %s", app, merchant)
		}
	}
	_, overview := b.get("/console")
	table := overview[strings.Index(overview, `id="merchants"`):]
	table = table[:strings.Index(table, "</table>")]
	for _, want := range []string{`id="merchant-default"`, `id="merchant-shop-b"`, "25.00", "10.00", "1 without answer"} {
		if !strings.Contains(table, want) {
			t.Errorf("the overview's table by merchant lacks %q:\n%s", want, table)
		}
	}
}
