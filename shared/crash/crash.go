// Package crash names the boundaries between two side effects on the money path — before and
// after each Lakala call, between two transactions, before and after each publish — so that a
// test can stop the process at each of them, or let its deadline expire there, and check that
// nothing is lost, charged or refunded twice (internal/crashpoints, make crashpoints).
//
// In every build without the crashpoints tag, Here is an empty function: the Lambda binaries
// carry no trace of it. Built with -tags crashpoints, Here consults a Plan a test armed on the
// context.
package crash

// Point names one boundary. Every Point is declared below and listed in All (a test keeps the
// two equal), and the crash-point test fails when a Point has no case that reaches it.
type Point string

// The money path's crash points, in the order a payment meets them.
const (
	OrderCreated       Point = "api.order_created"         // the order and its task are committed; the task is not published yet
	AttemptRecorded    Point = "payments.attempt_recorded" // an attempt's create call is counted; the call is not sent yet
	CreateSending      Point = "lakala.create.sending"     // the create request is built and about to leave
	CreateAnswered     Point = "lakala.create.answered"    // Lakala answered the create; nothing is recorded yet
	CheckoutCommitted  Point = "payments.checkout_committed"
	AttemptSaved       Point = "payments.attempt_saved" // what a call taught us of an attempt is saved; the next step has not run
	QuerySending       Point = "lakala.query.sending"
	QueryAnswered      Point = "lakala.query.answered"
	CloseSending       Point = "lakala.close.sending"
	CloseAnswered      Point = "lakala.close.answered"
	ReportCommitted    Point = "service.report_committed" // a gateway report and its consequence are committed; nothing is published or requeued
	OrderFailed        Point = "payments.order_failed"    // the order's failure and its task's end are committed; not published
	TaskRequeued       Point = "service.task_requeued"    // a finished task is queued again; not yet on the stream
	TaskFinished       Point = "processor.task_finished"  // a handling returned; its stream message is not acknowledged yet
	NotificationHeard  Point = "webhook.notification_verified"
	WindDownRequested  Point = "service.wind_down_requested" // an order's closing reason is committed; its task has not run
	RefundCreated      Point = "api.refund_created"
	RefundCounted      Point = "refunds.call_counted" // the refund is processing and its call counted; the call is not sent yet
	RefundSending      Point = "lakala.refund.sending"
	RefundAnswered     Point = "lakala.refund.answered"
	RefundQuerySending Point = "lakala.refund_query.sending"
	RefundQueryAnswer  Point = "lakala.refund_query.answered"
	RefundSettled      Point = "refunds.settled"       // the refund's final status is committed; not published
	ResultsAdded       Point = "streams.results_added" // result messages are on the streams; the outbox does not say so yet
	ReviewResolved     Point = "ops.review_resolved"   // a review case's resolution is committed; not published
)

// All is every Point, for the test that enumerates them.
var All = []Point{
	OrderCreated, AttemptRecorded, CreateSending, CreateAnswered, CheckoutCommitted, AttemptSaved,
	QuerySending, QueryAnswered, CloseSending, CloseAnswered, ReportCommitted, OrderFailed, TaskRequeued,
	TaskFinished, NotificationHeard, WindDownRequested, RefundCreated, RefundCounted, RefundSending,
	RefundAnswered, RefundQuerySending, RefundQueryAnswer, RefundSettled, ResultsAdded, ReviewResolved,
}
