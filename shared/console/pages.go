package console

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/loomipay/loomipay/shared/ops"
	"github.com/loomipay/loomipay/shared/pay"
)

// --- overview

type overviewData struct {
	ops.Dashboard
	Charts chartSet
	// Apps are the apps of today's or yesterday's money, in order, with both days' totals.
	Money []moneyRow
	// MerchantRows are today's money and the last hour's Lakala calls of each merchant with
	// either (shown when there are several).
	MerchantRows []merchantRow
}

type merchantRow struct {
	MerchantID string
	Today      ops.StatementTotals
	Calls      ops.CallCounts
}

type moneyRow struct {
	AppID            string // "" for the total
	Today, Yesterday ops.StatementTotals
}

func (c *Console) overview(w http.ResponseWriter, r *http.Request, v *view) {
	d, err := c.ops.Dashboard(r.Context(), v.Session.Actor())
	if err != nil {
		c.fail(w, r, v, err)
		return
	}
	span := r.URL.Query().Get("charts")
	if span == "" {
		span = ops.Last24Hours
	}
	win, err := c.ops.Window(r.Context(), v.Session.Actor(), span)
	if err != nil {
		c.fail(w, r, v, err)
		return
	}
	data := overviewData{Dashboard: d, Charts: charts(win, v.loc)}
	rows := map[string]*moneyRow{}
	var order []string
	for _, day := range []struct {
		apps  []ops.AppTotals
		today bool
	}{{d.Today.Apps, true}, {d.Yesterday.Apps, false}} {
		for _, a := range day.apps {
			if rows[a.AppID] == nil {
				rows[a.AppID] = &moneyRow{AppID: a.AppID}
				order = append(order, a.AppID)
			}
			if day.today {
				rows[a.AppID].Today = a.StatementTotals
			} else {
				rows[a.AppID].Yesterday = a.StatementTotals
			}
		}
	}
	for _, app := range order {
		data.Money = append(data.Money, *rows[app])
	}
	data.Money = append(data.Money, moneyRow{Today: d.Today.Total, Yesterday: d.Yesterday.Total})
	byMerchant := map[string]*merchantRow{}
	row := func(id string) *merchantRow {
		if byMerchant[id] == nil {
			byMerchant[id] = &merchantRow{MerchantID: id}
		}
		return byMerchant[id]
	}
	for _, m := range d.Today.Merchants {
		row(m.MerchantID).Today = m.StatementTotals
	}
	for id, calls := range d.LakalaCallsByMerchant {
		row(id).Calls = calls
	}
	for _, r := range byMerchant {
		data.MerchantRows = append(data.MerchantRows, *r)
	}
	slices.SortFunc(data.MerchantRows, func(a, b merchantRow) int { return strings.Compare(a.MerchantID, b.MerchantID) })
	v.Title, v.Nav, v.Data = "Overview", "overview", data
	c.render(w, r, http.StatusOK, "overview", v)
}

// --- lists

// listQuery is a list page's filters, as they travel in its URL.
type listQuery struct {
	Q, App, Status, From, To string
}

func listQueryOf(r *http.Request) listQuery {
	q := r.URL.Query()
	return listQuery{Q: strings.TrimSpace(q.Get("q")), App: strings.TrimSpace(q.Get("app")), Status: q.Get("status"), From: q.Get("from"), To: q.Get("to")}
}

// values are the filters as URL parameters (empty ones left out).
func (l listQuery) values() url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"q": l.Q, "app": l.App, "status": l.Status, "from": l.From, "to": l.To} {
		if s != "" {
			v.Set(k, s)
		}
	}
	return v
}

// link is path with the filters and extra parameters.
func (l listQuery) link(path string, extra ...string) string {
	v := l.values()
	for i := 0; i+1 < len(extra); i += 2 {
		v.Set(extra[i], extra[i+1])
	}
	if len(v) == 0 {
		return path
	}
	return path + "?" + v.Encode()
}

// filter reads the filters; times are in the viewer's zone (datetime-local inputs).
func (l listQuery) filter(loc *time.Location) (ops.ListFilter, error) {
	f := ops.ListFilter{AppID: l.App, Status: l.Status}
	for name, p := range map[string]struct {
		s   string
		dst *time.Time
	}{"from": {l.From, &f.From}, "to": {l.To, &f.To}} {
		if p.s == "" {
			continue
		}
		t, err := time.ParseInLocation("2006-01-02T15:04", p.s, loc)
		if err != nil {
			if t, err = time.ParseInLocation("2006-01-02", p.s, loc); err != nil {
				return f, pay.Invalid(name, "%s must be a date and time", name)
			}
		}
		*p.dst = t
	}
	return f, nil
}

type listData struct {
	listQuery
	Orders  []ops.OrderRow
	Refunds []ops.RefundRow
	// Found: the rows were found by id (the q box), not listed page by page.
	Found                bool
	Older, Newer, Export string // links
	First                bool   // the first page (no cursor)
	FirstPage            string // its link
}

func (c *Console) orders(w http.ResponseWriter, r *http.Request, v *view) {
	lq := listQueryOf(r)
	data, err := c.list(r, v, lq, "/orders", true)
	if err != nil {
		c.fail(w, r, v, err)
		return
	}
	v.Title, v.Nav, v.Data = "Orders", "orders", data
	c.render(w, r, http.StatusOK, "orders", v)
}

func (c *Console) refunds(w http.ResponseWriter, r *http.Request, v *view) {
	lq := listQueryOf(r)
	data, err := c.list(r, v, lq, "/refunds", false)
	if err != nil {
		c.fail(w, r, v, err)
		return
	}
	v.Title, v.Nav, v.Data = "Refunds", "refunds", data
	c.render(w, r, http.StatusOK, "refunds", v)
}

// list reads a page of orders or refunds: found by id when the q box is filled, else the page
// of the filters at the URL's cursor.
func (c *Console) list(r *http.Request, v *view, lq listQuery, path string, orders bool) (listData, error) {
	noQ := lq
	noQ.Q = ""
	data := listData{listQuery: lq, Export: noQ.link(base + path + ".csv"), FirstPage: lq.link(base + path)}
	f, err := lq.filter(v.loc)
	if err != nil {
		return data, err
	}
	a := v.Session.Actor()
	if lq.Q != "" {
		data.Found = true
		sf := ops.SearchFilter{Query: lq.Q, AppID: f.AppID, Status: f.Status, From: f.From, To: f.To, Limit: ops.ListPageSize}
		if orders {
			data.Orders, err = c.ops.SearchOrders(r.Context(), a, sf)
		} else {
			data.Refunds, err = c.ops.SearchRefunds(r.Context(), a, sf)
		}
		return data, err
	}
	q := r.URL.Query()
	after, before := q.Get("after"), q.Get("before")
	data.First = after == "" && before == ""
	var older, newer string
	if orders {
		p, err := c.ops.ListOrders(r.Context(), a, f, after, before)
		if err != nil {
			return data, err
		}
		data.Orders, older, newer = p.Rows, p.Older, p.Newer
	} else {
		p, err := c.ops.ListRefunds(r.Context(), a, f, after, before)
		if err != nil {
			return data, err
		}
		data.Refunds, older, newer = p.Rows, p.Older, p.Newer
	}
	if older != "" {
		data.Older = lq.link(base+path, "after", older)
	}
	if newer != "" {
		data.Newer = lq.link(base+path, "before", newer)
	}
	return data, nil
}

// --- exports

// The operations layer checks an export's bound and audits it before its first row; the
// response starts at that row, so a refusal (too many rows, a bad filter) is still an error page,
// and an error after it can only cut the download short, which the log records.

func (c *Console) exportOrders(w http.ResponseWriter, r *http.Request, v *view) {
	f, err := listQueryOf(r).filter(v.loc)
	if err != nil {
		c.fail(w, r, v, err)
		return
	}
	out := &csvResponse{w: w, what: "orders", loc: v.loc, header: ops.OrdersCSVHeader}
	n, err := c.ops.ExportOrders(r.Context(), v.Session.Actor(), f, func(row ops.OrderRow) error {
		cw, err := out.writer()
		if err != nil {
			return err
		}
		return cw.Order(row)
	})
	c.finishExport(w, r, v, out, n, err)
}

func (c *Console) exportRefunds(w http.ResponseWriter, r *http.Request, v *view) {
	f, err := listQueryOf(r).filter(v.loc)
	if err != nil {
		c.fail(w, r, v, err)
		return
	}
	out := &csvResponse{w: w, what: "refunds", loc: v.loc, header: ops.RefundsCSVHeader}
	n, err := c.ops.ExportRefunds(r.Context(), v.Session.Actor(), f, func(row ops.RefundRow) error {
		cw, err := out.writer()
		if err != nil {
			return err
		}
		return cw.Refund(row)
	})
	c.finishExport(w, r, v, out, n, err)
}

// csvResponse is an export's response, started at its first row.
type csvResponse struct {
	w      http.ResponseWriter
	what   string
	loc    *time.Location
	header []string
	cw     *ops.CSVWriter
}

func (o *csvResponse) writer() (*ops.CSVWriter, error) {
	if o.cw != nil {
		return o.cw, nil
	}
	o.w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	o.w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="loomipay-%s-%s.csv"`, o.what, time.Now().In(o.loc).Format("20060102-150405")))
	o.w.WriteHeader(http.StatusOK)
	cw, err := ops.NewCSVWriter(o.w, o.loc, o.header)
	o.cw = cw
	return cw, err
}

func (c *Console) finishExport(w http.ResponseWriter, r *http.Request, v *view, out *csvResponse, n int, err error) {
	if err != nil && out.cw == nil {
		c.fail(w, r, v, err)
		return
	}
	if err == nil {
		var cw *ops.CSVWriter
		if cw, err = out.writer(); err == nil { // nothing selected: the header alone
			err = cw.Flush()
		}
	}
	if err != nil {
		c.log.ErrorContext(r.Context(), "CSV export cut short", "what", out.what, "rows", n, "err", err)
	}
}

// --- order page and actions

type orderData struct {
	ops.Timeline
	Token string // the forms' idempotency token
}

func (c *Console) order(w http.ResponseWriter, r *http.Request, v *view) {
	tl, err := c.ops.OrderTimeline(r.Context(), v.Session.Actor(), r.PathValue("id"))
	if err != nil {
		c.fail(w, r, v, err)
		return
	}
	v.Title, v.Nav, v.Data = "Order "+tl.Order.MerchantOrderID, "orders", orderData{Timeline: tl, Token: ops.NewToken()}
	c.render(w, r, http.StatusOK, "order", v)
}

func (c *Console) refundOrder(w http.ResponseWriter, r *http.Request, v *view) {
	req := ops.RefundRequest{Order: r.PathValue("id"), Reason: r.PostFormValue("reason"), Token: r.PostFormValue("token"),
		All: r.PostFormValue("all") == "1"}
	if !req.All {
		amount, err := ops.ParseYuan(r.PostFormValue("amount"))
		if err != nil {
			c.fail(w, r, v, err)
			return
		}
		req.Amount = amount
	}
	res, err := c.ops.RefundOrder(r.Context(), v.Session.Actor(), req)
	if err != nil {
		c.fail(w, r, v, err)
		return
	}
	msg := fmt.Sprintf("Refund of %s asked for (merchant_refund_id %s): the processor sends it to Lakala, and the main app receives its result messages.",
		yuan(res.Refund.Amount), res.Refund.MerchantRefundID)
	if !res.Created {
		msg = fmt.Sprintf("This form was already sent: it made refund %s (%s), nothing more.", res.Refund.MerchantRefundID, yuan(res.Refund.Amount))
	}
	c.done(w, r, base+"/orders/"+url.PathEscape(res.Refund.PaymentOrderID), msg)
}

func (c *Console) closeOrder(w http.ResponseWriter, r *http.Request, v *view) {
	res, err := c.ops.CloseOrder(r.Context(), v.Session.Actor(), r.PathValue("id"), strings.TrimSpace(r.PostFormValue("note")), r.PostFormValue("token"))
	if err != nil {
		c.fail(w, r, v, err)
		return
	}
	var msg string
	switch {
	case res.Repeated:
		msg = "This form was already sent: the order was closed then; nothing more was done."
	case res.Order.Status == pay.StatusFailed:
		msg = "Order closed: " + ops.OrderWords(res.Order) + ". The main app receives the result message."
	default:
		msg = "Closing: Lakala did not confirm in time; the processor finishes the close and the main app is told."
	}
	c.done(w, r, base+"/orders/"+url.PathEscape(res.Order.ID), msg)
}

// --- statement

type statementData struct {
	ops.Statement
	Day, App, CSV string
	Prev, Next    string // links to the days around
}

func (c *Console) readStatement(r *http.Request, v *view) (ops.Statement, string, error) {
	q := r.URL.Query()
	day := ops.DayOf(time.Now())
	if s := q.Get("date"); s != "" {
		d, err := ops.ParseDay(s)
		if err != nil {
			return ops.Statement{}, "", err
		}
		day = d
	}
	app := strings.TrimSpace(q.Get("app"))
	if app != "" && !pay.ValidIdentifier(app) {
		return ops.Statement{}, app, pay.Invalid("app", "app must be an app id")
	}
	st, err := c.ops.Statement(r.Context(), v.Session.Actor(), day, app)
	return st, app, err
}

func (c *Console) statement(w http.ResponseWriter, r *http.Request, v *view) {
	st, app, err := c.readStatement(r, v)
	if err != nil {
		c.fail(w, r, v, err)
		return
	}
	link := func(path, date string) string {
		u := url.Values{"date": {date}}
		if app != "" {
			u.Set("app", app)
		}
		return base + path + "?" + u.Encode()
	}
	data := statementData{Statement: st, Day: st.Date, App: app, CSV: link("/statement.csv", st.Date),
		Prev: link("/statement", st.From.AddDate(0, 0, -1).Format("2006-01-02")), Next: link("/statement", st.To.Format("2006-01-02"))}
	v.Title, v.Nav, v.Data = "Statement "+st.Date, "statement", data
	c.render(w, r, http.StatusOK, "statement", v)
}

func (c *Console) statementCSV(w http.ResponseWriter, r *http.Request, v *view) {
	st, app, err := c.readStatement(r, v)
	if err != nil {
		c.fail(w, r, v, err)
		return
	}
	name := "loomipay-statement-" + st.Date
	if app != "" {
		name += "-" + app
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`.csv"`)
	if err := ops.WriteStatementCSV(w, st); err != nil {
		c.log.ErrorContext(r.Context(), "statement CSV cut short", "date", st.Date, "err", err)
	}
}
