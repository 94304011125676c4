//go:build !crashpoints

package crash

import "context"

// Here marks a crash point; without the crashpoints build tag it does nothing.
func Here(context.Context, Point) {}

// Enabled reports whether this build can crash at its points.
const Enabled = false
