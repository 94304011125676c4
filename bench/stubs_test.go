package bench

import "testing"

func testWrk(t *testing.T)       { t.Skip("todo") }
func testDrain(t *testing.T)     { t.Skip("todo") }
func testNotify(t *testing.T)    { t.Skip("todo") }
func testGrowth(t *testing.T)    { t.Skip("todo") }
func testFunctions(t *testing.T) { t.Skip("todo") }
