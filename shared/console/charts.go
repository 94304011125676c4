package console

import (
	"fmt"
	"math"
	"time"

	"github.com/loomipay/loomipay/shared/ops"
)

// Charts are drawn on the server as inline SVG: bars in a viewBox stretched to the page's width
// (preserveAspectRatio="none", so they fit a phone as well as a laptop), while every word and
// number is HTML beside them, at the page's own size. Each bar has a <title> (its bucket and
// values), and each span's numbers are also a table.

// chartW and chartH are the viewBox: each bucket is barSlot wide, its bar barWidth.
const (
	chartH   = 100.0
	barSlot  = 10.0
	barWidth = 8.0
)

type chart struct {
	ID      string
	Title   string
	Caption string // what the bars measure and their scale ("highest: ¥123.45 an hour")
	W, H    float64
	Bars    []bar
	// Line is a horizontal mark (the error rate's alarm threshold), its height in viewBox units;
	// 0: none.
	Line      float64
	LineLabel string
	Legend    []legendItem
	Empty     string // said instead of the bars when nothing happened
}

type bar struct {
	Title string
	Segs  []seg
}

type seg struct {
	X, Y, W, H float64
	Class      string
}

type legendItem struct{ Class, Label string }

// chartSet is the overview's charts over one span, with the labels of its axis and its numbers.
type chartSet struct {
	Span, Other         string // ops.Last24Hours or ops.Last30Days, and the other one
	Title, OtherTitle   string
	First, Middle, Last string
	Charts              []chart
	Rows                []chartRow
}

type chartRow struct {
	Label                      string
	Paid, Failed, Closed, Open int64
	Amount, Refunded           int64
	Calls, Errors              int64
	Lag                        string
}

var outcomeLabels = map[string]string{"paid": "paid", "failed": "failed", "closed": "closed on purpose", "open": "still open"}

// charts draws the window's charts; labels are in loc (30-day buckets are Beijing days).
func charts(w ops.Window, loc *time.Location) chartSet {
	cs := chartSet{Span: ops.Last24Hours, Other: ops.Last30Days, Title: "Last 24 hours", OtherTitle: "Last 30 days"}
	label := func(i int) string { return w.BucketStart(i).In(loc).Format("15:04") }
	span := func(i int) string {
		return w.BucketStart(i).In(loc).Format("Jan 2 15:04") + "–" + w.BucketStart(i+1).In(loc).Format("15:04")
	}
	per := "an hour"
	if w.Step >= 24*time.Hour {
		cs.Span, cs.Other, cs.Title, cs.OtherTitle = ops.Last30Days, ops.Last24Hours, "Last 30 days", "Last 24 hours"
		label = func(i int) string { return w.BucketStart(i).In(ops.Beijing).Format("Jan 2") }
		span = func(i int) string { return w.BucketStart(i).In(ops.Beijing).Format("Mon Jan 2") + " (Beijing day)" }
		per = "a day"
	}
	cs.First, cs.Middle, cs.Last = label(0), label(w.N/2), label(w.N-1)
	if w.Step < 24*time.Hour {
		cs.Last += " " + zoneName(loc) // hours are in the viewer's zone
	} else {
		cs.Last += " (Beijing days)"
	}

	orders := chart{ID: "chart-orders", Title: "Orders by outcome", W: float64(w.N) * barSlot, H: chartH,
		Legend: []legendItem{{"paid", "paid"}, {"failed", "failed"}, {"closed", "closed on purpose"}, {"open", "still open"}}}
	var most int64
	for i := range w.N {
		var sum int64
		for _, oc := range ops.WindowOutcomes {
			sum += w.Orders[oc][i]
		}
		most = max(most, sum)
	}
	for i := range w.N {
		b := bar{Title: span(i) + ":"}
		y := chartH
		for _, oc := range ops.WindowOutcomes {
			n := w.Orders[oc][i]
			b.Title += fmt.Sprintf(" %d %s,", n, outcomeLabels[oc])
			if n == 0 {
				continue
			}
			h := scaled(float64(n), float64(most))
			y -= h
			b.Segs = append(b.Segs, seg{X: float64(i)*barSlot + 1, Y: y, W: barWidth, H: h, Class: oc})
		}
		b.Title = b.Title[:len(b.Title)-1]
		orders.Bars = append(orders.Bars, b)
	}
	orders.Caption = fmt.Sprintf("orders created, by what became of them; highest: %d %s", most, per)
	if most == 0 {
		orders.Empty = "No order was created."
	}

	money := func(id, title, class, verb string, v []int64) chart {
		c := chart{ID: id, Title: title, W: float64(w.N) * barSlot, H: chartH}
		var top int64
		for _, x := range v {
			top = max(top, x)
		}
		for i, x := range v {
			b := bar{Title: fmt.Sprintf("%s: %s %s", span(i), yuan(x), verb)}
			if x > 0 {
				h := scaled(float64(x), float64(top))
				b.Segs = []seg{{X: float64(i)*barSlot + 1, Y: chartH - h, W: barWidth, H: h, Class: class}}
			}
			c.Bars = append(c.Bars, b)
		}
		c.Caption = fmt.Sprintf("by Lakala's trade time, as on the statement; highest: %s %s", yuan(top), per)
		if top == 0 {
			c.Empty = "Nothing " + verb + "."
		}
		return c
	}

	errs := chart{ID: "chart-lakala", Title: "Lakala error rate", W: float64(w.N) * barSlot, H: chartH}
	top := 0.25 // the alarm's threshold (20%) stays in view, below the top
	for i := range w.N {
		if w.LakalaCalls[i] > 0 {
			top = max(top, float64(w.LakalaErrors[i])/float64(w.LakalaCalls[i]))
		}
	}
	var calls int64
	for i := range w.N {
		calls += w.LakalaCalls[i]
		b := bar{Title: fmt.Sprintf("%s: no call", span(i))}
		if n := w.LakalaCalls[i]; n > 0 {
			rate := float64(w.LakalaErrors[i]) / float64(n)
			b.Title = fmt.Sprintf("%s: %.1f%% (%d of %d calls without a definite answer)", span(i), rate*100, w.LakalaErrors[i], n)
			h := max(scaled(rate, top), 1) // a sliver for a bucket with calls and no error
			class := "ok"
			if rate > 0.2 {
				class = "bad"
			} else if rate > 0 {
				class = "warn"
			}
			b.Segs = []seg{{X: float64(i)*barSlot + 1, Y: chartH - h, W: barWidth, H: h, Class: class}}
		}
		errs.Bars = append(errs.Bars, b)
	}
	errs.Line, errs.LineLabel = chartH-scaled(0.2, top), "20% (alarm)"
	errs.Caption = fmt.Sprintf("share of calls that timed out or got no verifiable answer; scale up to %.0f%%", top*100)
	if calls == 0 {
		errs.Empty = "No call to Lakala."
	}

	lag := chart{ID: "chart-lag", Title: "Task lag", W: float64(w.N) * barSlot, H: chartH}
	most2, seen := 0.0, false
	for _, v := range w.TaskLag {
		most2 = max(most2, v)
		seen = seen || v >= 0
	}
	for i, v := range w.TaskLag {
		b := bar{Title: fmt.Sprintf("%s: no processor run recorded", span(i))}
		if v >= 0 {
			b.Title = fmt.Sprintf("%s: at most %s", span(i), seconds(v))
			if v > 0 {
				h := scaled(v, most2)
				b.Segs = []seg{{X: float64(i)*barSlot + 1, Y: chartH - h, W: barWidth, H: h, Class: "lag"}}
			}
		}
		lag.Bars = append(lag.Bars, b)
	}
	lag.Caption = fmt.Sprintf("age of the oldest task waiting for the processor, the most seen; highest: %s", seconds(most2))
	if !seen {
		lag.Empty = "The processor recorded no run."
	}

	cs.Charts = []chart{orders, money("chart-paid", "Amount paid", "paid", "paid", w.Paid),
		money("chart-refunded", "Refunds", "refund", "refunded", w.Refunded), errs, lag}
	for i := w.N - 1; i >= 0; i-- {
		r := chartRow{Label: span(i), Paid: w.Orders["paid"][i], Failed: w.Orders["failed"][i], Closed: w.Orders["closed"][i],
			Open: w.Orders["open"][i], Amount: w.Paid[i], Refunded: w.Refunded[i], Calls: w.LakalaCalls[i], Errors: w.LakalaErrors[i], Lag: "—"}
		if w.TaskLag[i] >= 0 {
			r.Lag = seconds(w.TaskLag[i])
		}
		cs.Rows = append(cs.Rows, r)
	}
	return cs
}

// scaled is v's bar height, the tallest (top) filling the chart.
func scaled(v, top float64) float64 {
	if top <= 0 || v <= 0 {
		return 0
	}
	return math.Round(v/top*chartH*100) / 100
}

func seconds(s float64) string {
	d := time.Duration(s * float64(time.Second)).Round(time.Second)
	if d == 0 {
		return "0s"
	}
	return d.String()
}

// zoneName is how the console names the viewer's zone.
func zoneName(loc *time.Location) string {
	if loc == ops.Beijing {
		return "CST"
	}
	return "UTC"
}
