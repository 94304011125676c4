package streams

import (
	"context"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// DeadLetterEntry is one entry of the dead-letter stream.
type DeadLetterEntry struct {
	ID        string `json:"stream_id"`
	TaskID    int64  `json:"task_id"` // 0 when the entry's task_id was malformed
	Kind      string `json:"kind"`
	SubjectID string `json:"subject_id"`
	Attempts  int    `json:"attempts"`
	Reason    string `json:"reason"`
	Timestamp string `json:"timestamp"`
}

// DeadLetters reads up to count entries of the dead-letter stream, oldest first.
func (s *Streams) DeadLetters(ctx context.Context, count int64) ([]DeadLetterEntry, error) {
	msgs, err := s.rdb.XRangeN(ctx, s.Name(DeadLetterStream), "-", "+", count).Result()
	if err != nil {
		return nil, fmt.Errorf("read dead letters: %w", err)
	}
	out := make([]DeadLetterEntry, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, decodeDeadLetter(m))
	}
	return out, nil
}

func decodeDeadLetter(m redis.XMessage) DeadLetterEntry {
	str := func(k string) string { v, _ := m.Values[k].(string); return v }
	e := DeadLetterEntry{ID: m.ID, Kind: str("kind"), SubjectID: str("subject_id"), Reason: str("reason"), Timestamp: str("timestamp")}
	e.TaskID, _ = strconv.ParseInt(str("task_id"), 10, 64)
	e.Attempts, _ = strconv.Atoi(str("attempts"))
	return e
}

// DeleteDeadLetters removes entries from the dead-letter stream (after a redrive or a discard).
func (s *Streams) DeleteDeadLetters(ctx context.Context, ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	if err := s.rdb.XDel(ctx, s.Name(DeadLetterStream), ids...).Err(); err != nil {
		return fmt.Errorf("delete dead letters: %w", err)
	}
	return nil
}

// DeadLetterCount is the length of the dead-letter stream.
func (s *Streams) DeadLetterCount(ctx context.Context) (int64, error) {
	return s.rdb.XLen(ctx, s.Name(DeadLetterStream)).Result()
}
