package service

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/loomipay/loomipay/shared/pay"
	"github.com/loomipay/loomipay/shared/postgres"
)

func TestKeyCacheEvictsTheLeastRecentlyUsed(t *testing.T) {
	loads := map[string]int{}
	load := func(_ context.Context, id string) (postgres.APIKey, error) {
		loads[id]++
		if id == "good" {
			return postgres.APIKey{ID: id, AppID: "shop"}, nil
		}
		return postgres.APIKey{}, pay.ErrNotFound
	}
	c := newKeyCache(time.Minute, 100)
	ctx := context.Background()
	if _, err := c.get(ctx, "good", load); err != nil {
		t.Fatal(err)
	}
	// A flood of random ids, 10 times the cache's size, with the good key in use throughout.
	for i := range 1000 {
		if _, err := c.get(ctx, fmt.Sprintf("random%04d", i), load); err != pay.ErrNotFound {
			t.Fatalf("random id: err = %v; want ErrNotFound", err)
		}
		if i%10 == 0 {
			if rec, err := c.get(ctx, "good", load); err != nil || rec.AppID != "shop" {
				t.Fatalf("good key = %+v, %v", rec, err)
			}
		}
	}
	if loads["good"] != 1 {
		t.Errorf("the good key was read %d times; want 1 (it must stay cached through the flood)", loads["good"])
	}
	if n := c.len(); n != 100 {
		t.Errorf("cache holds %d entries; want its bound 100", n)
	}
	// The oldest random ids were evicted (read again), the newest still cached.
	c.get(ctx, "random0000", load)
	c.get(ctx, "random0999", load)
	if loads["random0000"] != 2 || loads["random0999"] != 1 {
		t.Errorf("reads: random0000 %d (want 2, evicted), random0999 %d (want 1, cached)", loads["random0000"], loads["random0999"])
	}
}

func TestKeyCacheExpires(t *testing.T) {
	n := 0
	load := func(context.Context, string) (postgres.APIKey, error) { n++; return postgres.APIKey{}, nil }
	c := newKeyCache(10*time.Millisecond, 10)
	c.get(context.Background(), "a", load)
	c.get(context.Background(), "a", load)
	time.Sleep(20 * time.Millisecond)
	c.get(context.Background(), "a", load)
	if n != 2 {
		t.Errorf("loads = %d; want 2 (one cached hit, one after expiry)", n)
	}
	if c.len() != 1 {
		t.Errorf("len = %d; want 1 (a refreshed entry replaces itself)", c.len())
	}
}
