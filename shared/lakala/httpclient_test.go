package lakala

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Many calls in flight must reuse connections round after round: each new connection to Lakala
// is a TLS handshake.
func TestHTTPClientReusesConnections(t *testing.T) {
	var opened atomic.Int64
	release := make(chan struct{})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release // hold every call so that all of a round are in flight at once
		io.WriteString(w, "ok")
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			opened.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()

	const inFlight, rounds = 32, 3
	client := NewHTTPClient(5*time.Second, inFlight)
	for range rounds {
		var wg sync.WaitGroup
		for range inFlight {
			wg.Go(func() {
				resp, err := client.Get(srv.URL)
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			})
		}
		for range inFlight {
			release <- struct{}{}
		}
		wg.Wait()
	}
	// A connection goes back to the idle pool shortly after its body is closed, so the next round
	// may dial a few extra; without reuse it would be about inFlight new ones every round (Go's
	// default transport: 85 here).
	if got, limit := opened.Load(), int64(inFlight+inFlight/4); got > limit {
		t.Errorf("opened %d connections for %d rounds of %d concurrent calls; want at most %d (reused)", got, rounds, inFlight, limit)
	}
}

// A timeout of zero (LAKALA_TIMEOUT=0s) must not become "no timeout".
func TestHTTPClientAlwaysHasATimeout(t *testing.T) {
	for _, timeout := range []time.Duration{0, -time.Second} {
		if got := NewHTTPClient(timeout, 0).Timeout; got != defaultHTTPTimeout {
			t.Errorf("NewHTTPClient(%v).Timeout = %v; want %v", timeout, got, defaultHTTPTimeout)
		}
	}
}
