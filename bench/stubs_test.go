package bench

import "testing"

func testWrk(t *testing.T)       { t.Skip("todo") }
func testFunctions(t *testing.T) { t.Skip("todo") }
