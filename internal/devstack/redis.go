package devstack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

const (
	defaultRedisURL = "redis://127.0.0.1:6379/0"
	// redisStartTimeout bounds the wait for a fresh redis-server to answer,
	// which normally takes a few milliseconds.
	redisStartTimeout = 10 * time.Second
	redisStopTimeout  = 5 * time.Second
)

// Redis returns a Redis URL for local development: $REDIS_URL as is; the
// default local server if it answers PING; otherwise a private redis-server
// (if installed) on a free loopback port without persistence; otherwise an
// in-process miniredis. stop is never nil, may be called more than once, and
// does nothing for a server this call did not start.
func Redis(ctx context.Context, o Options) (url string, stop func(), err error) {
	log := o.logger()
	if envURL := os.Getenv("REDIS_URL"); envURL != "" {
		// The URL may hold a password, so it is not logged.
		log.Info("using Redis from REDIS_URL")
		return envURL, noop, nil
	}

	probeErr := pingRedis(ctx, defaultRedisURL)
	if probeErr == nil {
		log.Info("using local Redis at 127.0.0.1:6379", "url", defaultRedisURL)
		return defaultRedisURL, noop, nil
	}
	log.Info("no usable Redis at 127.0.0.1:6379", "reason", probeErr)

	if bin, err := exec.LookPath("redis-server"); err == nil {
		url, stop, err := startRedisServer(ctx, o, bin)
		if err == nil {
			return url, stop, nil
		}
		log.Warn("could not start redis-server; falling back to in-process miniredis", "err", err)
	}
	return startMiniredis(o)
}

// pingRedis reports whether a server at url answers PING within probeTimeout.
func pingRedis(ctx context.Context, url string) error {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return fmt.Errorf("parsing Redis URL: %w", err)
	}
	opts.DialTimeout = probeTimeout
	opts.ReadTimeout = probeTimeout
	opts.WriteTimeout = probeTimeout
	// A probe must not retry its way past the timeout.
	opts.MaxRetries = -1
	opts.DialerRetries = 1
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()

	// go-redis logs every failed dial to its process-wide logger, which would
	// print noise on each run of a machine with no Redis; a bare TCP dial
	// settles that common case quietly.
	conn, err := (&net.Dialer{}).DialContext(ctx, opts.Network, opts.Addr)
	if err != nil {
		return err
	}
	conn.Close()

	client := redis.NewClient(opts)
	defer client.Close()
	return client.Ping(ctx).Err()
}

// startRedisServer runs bin as a throwaway cache: no RDB snapshots, no AOF,
// loopback only, output in StateDir/redis.log.
func startRedisServer(ctx context.Context, o Options, bin string) (string, func(), error) {
	log := o.logger()
	stateDir, err := o.stateDir()
	if err != nil {
		return "", noop, err
	}
	logPath := filepath.Join(stateDir, "redis.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return "", noop, fmt.Errorf("creating Redis log file: %w", err)
	}
	defer logFile.Close() // the child keeps its own copy of the descriptor

	port, err := freePort()
	if err != nil {
		return "", noop, err
	}
	// Not CommandContext: ctx bounds starting the server, not its life.
	cmd := exec.Command(bin,
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--daemonize", "no",
		"--dir", stateDir,
	)
	cmd.Dir = stateDir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return "", noop, fmt.Errorf("starting redis-server: %w", err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	stop := sync.OnceFunc(func() {
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			log.Warn("signalling redis-server failed", "err", err)
		}
		select {
		case <-exited:
		case <-time.After(redisStopTimeout):
			_ = cmd.Process.Kill()
			<-exited
		}
		log.Info("stopped private redis-server")
	})

	url := fmt.Sprintf("redis://127.0.0.1:%d/0", port)
	if err := waitForRedis(ctx, url, exited); err != nil {
		stop()
		if waitErr != nil {
			err = fmt.Errorf("%w: redis-server exited: %w", err, waitErr)
		}
		return "", noop, withLog(err, logPath)
	}
	log.Info("using private redis-server (no persistence)", "url", url, "log", logPath)
	return url, stop, nil
}

// waitForRedis polls until the server answers PING, exits, or the start-up
// time runs out.
func waitForRedis(ctx context.Context, url string, exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, redisStartTimeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := pingRedis(ctx, url)
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return errors.New("redis-server exited during start-up")
		case <-ctx.Done():
			return fmt.Errorf("waiting for redis-server: %w (last error: %w)", ctx.Err(), err)
		case <-tick.C:
		}
	}
}

// startMiniredis serves Redis from this process: enough for development, but
// in-memory only and gone when the process ends.
func startMiniredis(o Options) (string, func(), error) {
	server := miniredis.NewMiniRedis()
	if err := server.Start(); err != nil {
		return "", noop, fmt.Errorf("starting miniredis: %w", err)
	}
	url := "redis://" + server.Addr() + "/0"
	o.logger().Info("using in-process miniredis (install redis-server for a real one)", "url", url)
	return url, sync.OnceFunc(server.Close), nil
}
