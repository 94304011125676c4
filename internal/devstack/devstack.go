// Package devstack provides the local PostgreSQL and Redis that `loomipay dev`
// needs, with no configuration: an explicit URL from the environment always
// wins, then a server already running on its default local port, and only
// then a private server started from the machine's own binaries (or, for
// Redis, an in-process miniredis), so a fresh machine works as well as one
// that already runs both services.
package devstack

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Options configures where private servers keep their state and where the
// package reports what it chose.
type Options struct {
	// StateDir is a project-local, git-ignored directory (e.g. ".localdev")
	// kept across runs; private servers keep their data and logs under it.
	// Empty means ".localdev".
	StateDir string
	// Logger receives one line per decision ("using private PostgreSQL at …").
	// Nil discards them.
	Logger *slog.Logger
}

const (
	defaultStateDir = ".localdev"
	// probeTimeout bounds each check for an already running local server, so
	// a machine with nothing listening falls through to a private server
	// without a noticeable pause.
	probeTimeout = 500 * time.Millisecond
)

func (o Options) logger() *slog.Logger {
	if o.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Logger
}

// stateDir returns the absolute state directory, created if missing. It is
// absolute because servers run with their own working directory (and, as
// root, as another user) and must still find their files.
func (o Options) stateDir() (string, error) {
	dir := o.StateDir
	if dir == "" {
		dir = defaultStateDir
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("resolving state directory %q: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return "", fmt.Errorf("creating state directory: %w", err)
	}
	return abs, nil
}

func noop() {}

// freePort asks the kernel for a currently unused loopback TCP port. The
// port is released before the server binds it; the window is tiny and a
// collision only makes the server fail to start with a clear log.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// logTail returns the last lines of a server log so a failure to start can
// be diagnosed from the error alone.
func logTail(path string, lines int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	const maxBytes = 8 << 10
	if st, err := f.Stat(); err == nil && st.Size() > maxBytes {
		if _, err := f.Seek(-maxBytes, io.SeekEnd); err != nil {
			return ""
		}
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return ""
	}
	all := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return string(bytes.Join(all, []byte("\n")))
}

// withLog decorates a start-up failure with the log file's last lines.
func withLog(err error, logPath string) error {
	tail := logTail(logPath, 15)
	if tail == "" {
		return fmt.Errorf("%w (log: %s)", err, logPath)
	}
	return fmt.Errorf("%w (log: %s):\n%s", err, logPath, tail)
}
