package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

var (
	bucketRecords = []byte("records")
	bucketLog     = []byte("log") // revision -> Change
	bucketMeta    = []byte("meta")
	keyRev        = []byte("rev")
)

// keepLog is how many revisions a watcher can resume from.
const keepLog = 10000

// Bolt is the embedded store: one bbolt file, a write transaction per
// change, fsync'd before Update returns (bbolt's default), as etcd's
// backend does.
type Bolt struct {
	db *bolt.DB

	// mu guards notify, which is closed and replaced after each commit to
	// wake watchers.
	mu     sync.Mutex
	notify chan struct{}
}

// OpenBolt opens (or creates) the store file at path. bbolt locks the file:
// a second daemon on the same file waits up to timeout, then fails.
func OpenBolt(path string, timeout time.Duration) (*Bolt, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout})
	if err != nil {
		if err == bolt.ErrTimeout {
			return nil, fmt.Errorf("open store %s: another process holds it (is ctld already running?)", path)
		}
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketRecords, bucketLog, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	return &Bolt{db: db, notify: make(chan struct{})}, nil
}

func (s *Bolt) Close() error { return s.db.Close() }

type boltTx struct {
	tx      *bolt.Tx
	rev     uint64
	put     map[string]bool
	deleted map[string]bool
}

func readRev(tx *bolt.Tx) uint64 {
	v := tx.Bucket(bucketMeta).Get(keyRev)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func (t *boltTx) Rev() uint64 { return t.rev }

func (t *boltTx) Get(key string) ([]byte, bool) {
	v := t.tx.Bucket(bucketRecords).Get([]byte(key))
	if v == nil {
		return nil, false
	}
	return bytes.Clone(v), true
}

func (t *boltTx) List(prefix string, fn func(string, []byte) error) error {
	c := t.tx.Bucket(bucketRecords).Cursor()
	p := []byte(prefix)
	for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
		if err := fn(string(k), v); err != nil {
			return err
		}
	}
	return nil
}

func (t *boltTx) Put(key string, value []byte) error {
	b := t.tx.Bucket(bucketRecords)
	if old := b.Get([]byte(key)); old != nil && bytes.Equal(old, value) {
		return nil // unchanged: no revision for it
	}
	if err := b.Put([]byte(key), value); err != nil {
		return err
	}
	delete(t.deleted, key)
	t.put[key] = true
	return nil
}

func (t *boltTx) Delete(key string) error {
	b := t.tx.Bucket(bucketRecords)
	if b.Get([]byte(key)) == nil {
		return nil
	}
	if err := b.Delete([]byte(key)); err != nil {
		return err
	}
	delete(t.put, key)
	t.deleted[key] = true
	return nil
}

func revKey(rev uint64) []byte { return binary.BigEndian.AppendUint64(nil, rev) }

func (s *Bolt) Update(fn func(Tx) error) (uint64, error) {
	var rev uint64
	changed := false
	err := s.db.Update(func(tx *bolt.Tx) error {
		t := &boltTx{tx: tx, rev: readRev(tx), put: map[string]bool{}, deleted: map[string]bool{}}
		rev = t.rev
		if err := fn(t); err != nil {
			return err
		}
		if len(t.put) == 0 && len(t.deleted) == 0 {
			return nil
		}
		changed = true
		rev = t.rev + 1
		ch := Change{Rev: rev}
		for k := range t.put {
			ch.Put = append(ch.Put, k)
		}
		for k := range t.deleted {
			ch.Deleted = append(ch.Deleted, k)
		}
		data, err := json.Marshal(ch)
		if err != nil {
			return err
		}
		log := tx.Bucket(bucketLog)
		if err := log.Put(revKey(rev), data); err != nil {
			return err
		}
		if rev > keepLog {
			if err := log.Delete(revKey(rev - keepLog)); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(keyRev, revKey(rev))
	})
	if err != nil {
		return 0, err
	}
	if changed {
		s.mu.Lock()
		close(s.notify)
		s.notify = make(chan struct{})
		s.mu.Unlock()
	}
	return rev, nil
}

func (s *Bolt) View(fn func(ReadTx) error) error {
	return s.db.View(func(tx *bolt.Tx) error {
		return fn(&boltTx{tx: tx, rev: readRev(tx)})
	})
}

func (s *Bolt) Watch(ctx context.Context, from uint64) <-chan Change {
	out := make(chan Change)
	go func() {
		defer close(out)
		next := from + 1
		for {
			s.mu.Lock()
			wake := s.notify
			s.mu.Unlock()
			var batch []Change
			compacted := false
			s.db.View(func(tx *bolt.Tx) error {
				log := tx.Bucket(bucketLog)
				c := log.Cursor()
				k, v := c.Seek(revKey(next))
				if k != nil && binary.BigEndian.Uint64(k) > next {
					compacted = true
					return nil
				}
				for ; k != nil; k, v = c.Next() {
					var ch Change
					if json.Unmarshal(v, &ch) == nil {
						batch = append(batch, ch)
					}
				}
				return nil
			})
			if compacted {
				return
			}
			for _, ch := range batch {
				select {
				case out <- ch:
					next = ch.Rev + 1
				case <-ctx.Done():
					return
				}
			}
			select {
			case <-wake:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}
