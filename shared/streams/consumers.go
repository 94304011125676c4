package streams

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Consumer is one consumer of the processor's group.
type Consumer struct {
	Name    string
	Pending int64         // messages read and not yet acknowledged
	Idle    time.Duration // since it last read
}

// Consumers lists the processor group's consumers (none when the group does not exist yet).
func (s *Streams) Consumers(ctx context.Context) ([]Consumer, error) {
	list, err := s.rdb.XInfoConsumers(ctx, s.Name(TaskStream), s.cfg.Group).Result()
	if err != nil {
		if errors.Is(err, redis.Nil) || strings.Contains(err.Error(), "no such key") || strings.HasPrefix(err.Error(), "NOGROUP") {
			return nil, nil
		}
		return nil, fmt.Errorf("list consumers: %w", err)
	}
	out := make([]Consumer, len(list))
	for i, c := range list {
		out[i] = Consumer{Name: c.Name, Pending: c.Pending, Idle: c.Idle}
	}
	return out, nil
}

// RemoveConsumer deletes a consumer that holds no pending messages, and reports whether it did.
// One with pending messages stays, so that reclaim finds them; deleting a consumer that is in
// fact still reading is harmless, since its next read creates it again.
func (s *Streams) RemoveConsumer(ctx context.Context, name string) (bool, error) {
	list, err := s.Consumers(ctx)
	if err != nil {
		return false, err
	}
	for _, c := range list {
		if c.Name == name && c.Pending == 0 {
			if err := s.rdb.XGroupDelConsumer(ctx, s.Name(TaskStream), s.cfg.Group, name).Err(); err != nil {
				return false, fmt.Errorf("remove consumer %s: %w", name, err)
			}
			return true, nil
		}
	}
	return false, nil
}

// RemoveIdleConsumers deletes every consumer without pending messages that has not read for
// minIdle: each processor run reads under a name of its own, and Redis would otherwise keep the
// names of all finished runs forever.
func (s *Streams) RemoveIdleConsumers(ctx context.Context, minIdle time.Duration) (int, error) {
	list, err := s.Consumers(ctx)
	if err != nil {
		return 0, err
	}
	removed := 0
	for _, c := range list {
		if c.Pending > 0 || c.Idle < minIdle {
			continue
		}
		if err := s.rdb.XGroupDelConsumer(ctx, s.Name(TaskStream), s.cfg.Group, c.Name).Err(); err != nil {
			return removed, fmt.Errorf("remove consumer %s: %w", c.Name, err)
		}
		removed++
	}
	return removed, nil
}
