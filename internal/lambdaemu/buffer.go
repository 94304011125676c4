package lambdaemu

import (
	"bytes"
	"sync"
)

// LockedBuffer collects a process's output, written from other goroutines (the exec package's
// copy goroutines, a command's run loop), so that it can be read while it is still written.
// Unlike the rest of the package it builds everywhere, for tests that only need the buffer.
type LockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *LockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
