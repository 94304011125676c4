package secrets

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Many callers refused with the same value share one read; a caller refused with a value older
// than the current one retries without a read; a read that fails or finds the same value gives
// no retry; reads are at most one a second.
func TestRotatingRefresh(t *testing.T) {
	ctx := context.Background()
	var reads atomic.Int64
	next := "two"
	var fail error
	r := NewRotating("one", func(context.Context) (string, error) {
		reads.Add(1)
		time.Sleep(10 * time.Millisecond) // long enough for the others to queue up behind it
		return next, fail
	})

	_, gen := r.Value()
	var wg sync.WaitGroup
	var retries atomic.Int64
	for range 8 {
		wg.Go(func() {
			if retry, err := r.Refresh(ctx, gen); retry && err == nil {
				retries.Add(1)
			}
		})
	}
	wg.Wait()
	if v, g := r.Value(); v != "two" || g != gen+1 || reads.Load() != 1 || retries.Load() != 8 {
		t.Fatalf("after 8 refusals: value %q gen %d, %d reads, %d retries; want two, %d, 1 read, 8 retries", v, g, reads.Load(), retries.Load(), gen+1)
	}

	// Refused again with the new value at once: no read within a second, no retry.
	_, gen = r.Value()
	if retry, _ := r.Refresh(ctx, gen); retry || reads.Load() != 1 {
		t.Errorf("refresh within a second: retry %v after %d reads; want none", retry, reads.Load())
	}
	r.lastReload = time.Now().Add(-2 * minReloadInterval)
	next = "two" // unchanged
	if retry, err := r.Refresh(ctx, gen); retry || err != nil || reads.Load() != 2 {
		t.Errorf("refresh finding the same value: retry %v, %v after %d reads; want no retry after 2", retry, err, reads.Load())
	}
	r.lastReload = time.Now().Add(-2 * minReloadInterval)
	next, fail = "", errors.New("throttled")
	if retry, err := r.Refresh(ctx, gen); retry || err == nil {
		t.Errorf("refresh whose read failed: retry %v, %v; want no retry and the error", retry, err)
	}
	if v, g := r.Value(); v != "two" || g != gen {
		t.Errorf("value after failed reads = %q gen %d; want two, %d", v, g, gen)
	}
}
