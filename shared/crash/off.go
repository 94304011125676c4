//go:build !crashpoints

package crash

import "context"

// Here marks a crash point; without the crashpoints build tag it does nothing.
func Here(context.Context, Point) {}

// LakalaCall marks the crash points of a Lakala call (its operation, as lakala.CallRecord names
// it): before it is sent, and once its answer arrived; without the tag it does nothing.
func LakalaCall(context.Context, string, bool) {}

// Enabled reports whether this build can crash at its points.
const Enabled = false
