// Package store keeps ctld's model: keyed records, changed in transactions,
// each committed change numbered by a revision that a watcher can resume
// from. The interface is small on purpose, so that a distributed store
// (etcd) can stand in for the embedded one without the model noticing. It
// knows nothing of what the records mean.
package store

import (
	"context"
	"errors"
)

// Store is a transactional key-value store with revisions.
type Store interface {
	// Update runs fn in one write transaction. When fn returns nil the
	// change is durable before Update returns, and gets the next revision;
	// when fn fails nothing is written. A transaction that changes nothing
	// keeps the revision it found.
	Update(fn func(Tx) error) (rev uint64, err error)
	// View runs fn in a read transaction that sees one revision.
	View(fn func(ReadTx) error) error
	// Watch sends every change committed after revision from, in order,
	// until ctx ends; it starts with the changes already committed. A
	// revision compacted away ends the channel at once.
	Watch(ctx context.Context, from uint64) <-chan Change
	Close() error
}

// ReadTx reads records.
type ReadTx interface {
	// Rev is the revision the transaction sees.
	Rev() uint64
	Get(key string) ([]byte, bool)
	// List calls fn for every record whose key starts with prefix, in key
	// order; the value is only valid during the call.
	List(prefix string, fn func(key string, value []byte) error) error
}

// Tx reads and writes records.
type Tx interface {
	ReadTx
	Put(key string, value []byte) error
	Delete(key string) error
}

// Change is one committed revision: the keys it wrote and deleted.
type Change struct {
	Rev     uint64   `json:"rev"`
	Put     []string `json:"put,omitempty"`
	Deleted []string `json:"deleted,omitempty"`
}

// ErrCompacted is why a watch ended: the revision it asked for is older than
// what the store keeps.
var ErrCompacted = errors.New("revision compacted")
