//go:build crashpoints

package crash

import (
	"context"
	"runtime"
	"sync"
	"time"
)

// Enabled reports whether this build can crash at its points.
const Enabled = true

// Mode is how a process meets its crash point.
type Mode int

const (
	// Die: the goroutine at the point stops on the spot (its deferred calls run, as a database
	// transaction's rollback does when a process dies) and the process context is cancelled, so
	// everything else the process was doing stops too. Its leases stay held until they run out.
	Die Mode = iota
	// Deadline: the process's deadline expires at the point: the code goes on, and everything it
	// does under the context from then on fails as it would at a Lambda timeout.
	Deadline
)

func (m Mode) String() string {
	if m == Deadline {
		return "deadline"
	}
	return "dies"
}

// Plan is what one test case arms: the point, which meeting of it triggers (1 = the first),
// and the mode. A Plan also records every point met, armed or not.
type Plan struct {
	Point Point
	Nth   int
	Mode  Mode

	mu        sync.Mutex
	met       map[Point]int
	triggered bool
	at        time.Time
}

// Met returns how often each point was met.
func (p *Plan) Met() map[Point]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[Point]int, len(p.met))
	for k, v := range p.met {
		out[k] = v
	}
	return out
}

// Triggered reports whether the plan's crash happened.
func (p *Plan) Triggered() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.triggered
}

type planKey struct{}

// process is one armed process: its context ends when it dies or its deadline expires.
type process struct {
	plan *Plan
	ctx  *expiringContext
}

// Arm returns a context for one process (a processor run, an HTTP request) under plan, and a
// function that releases it. The process dies or meets its deadline when it reaches the plan's
// point for the Nth time, counted over every process armed with the plan.
func Arm(parent context.Context, plan *Plan) (context.Context, context.CancelFunc) {
	ec := newExpiringContext(parent)
	ctx := context.WithValue(ec, planKey{}, &process{plan: plan, ctx: ec})
	return ctx, func() { ec.end(context.Canceled) }
}

// Here is a crash point: under an armed plan it counts the meeting, and crashes the process
// when it is the plan's.
func Here(ctx context.Context, p Point) {
	proc, ok := ctx.Value(planKey{}).(*process)
	if !ok {
		return
	}
	plan := proc.plan
	plan.mu.Lock()
	if plan.met == nil {
		plan.met = map[Point]int{}
	}
	plan.met[p]++
	hit := p == plan.Point && plan.met[p] == max(plan.Nth, 1) && !plan.triggered
	if hit {
		plan.triggered, plan.at = true, time.Now()
	}
	plan.mu.Unlock()
	if !hit {
		return
	}
	switch plan.Mode {
	case Deadline:
		proc.ctx.end(context.DeadlineExceeded)
	default:
		proc.ctx.end(context.Canceled)
		runtime.Goexit()
	}
}

// lakalaPoints are each Lakala operation's points: its request about to leave, its answer arrived.
var lakalaPoints = map[string][2]Point{
	"create":       {CreateSending, CreateAnswered},
	"query":        {QuerySending, QueryAnswered},
	"close":        {CloseSending, CloseAnswered},
	"refund":       {RefundSending, RefundAnswered},
	"tradequery":   {RefundQuerySending, RefundQueryAnswer},
	"refund_query": {RefundQuerySending, RefundQueryAnswer},
}

// LakalaCall is Here at one of a Lakala call's two points.
func LakalaCall(ctx context.Context, operation string, answered bool) {
	points, ok := lakalaPoints[operation]
	if !ok {
		return
	}
	if answered {
		Here(ctx, points[1])
	} else {
		Here(ctx, points[0])
	}
}

// expiringContext is a context whose end can be forced with the error a real deadline gives, so
// code below it meets exactly what a Lambda timeout shows it. Contexts derived from it end with
// it (the context package watches Done of a parent it does not know).
type expiringContext struct {
	context.Context
	once sync.Once
	done chan struct{}
	mu   sync.Mutex
	err  error
	stop func() bool
}

func newExpiringContext(parent context.Context) *expiringContext {
	ec := &expiringContext{Context: parent, done: make(chan struct{})}
	ec.stop = context.AfterFunc(parent, func() { ec.end(parent.Err()) })
	return ec
}

func (c *expiringContext) end(err error) {
	c.once.Do(func() {
		c.mu.Lock()
		c.err = err
		c.mu.Unlock()
		close(c.done)
		c.stop()
	})
}

func (c *expiringContext) Done() <-chan struct{} { return c.done }

func (c *expiringContext) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *expiringContext) Deadline() (time.Time, bool) { return c.Context.Deadline() }
