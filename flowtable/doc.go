// Package flowtable is the forwarder's table of flows: a concurrent hash
// table from a TCP/UDP 5-tuple (Key) to a flow record (Flow), with a fixed
// capacity and idle expiry. It imports the standard library only.
//
// # Concurrency
//
// Lookups take no lock of any kind: a lookup hashes the key, loads its
// bucket's tag word and slot pointers with atomic loads, and compares keys
// of the records whose one-byte hash tag matches (the tags are compared at
// once, SWAR, as in xsync's map). Writers (Insert, Delete) take the mutex of
// the one bucket chain they change, so two inserts of one key cannot both
// succeed, and publish with atomic stores: a slot pointer is stored before
// the tag that makes readers look at it, and a tag is cleared before its
// slot. A reader racing a writer therefore sees the record either whole or
// not at all; it may miss a record inserted after it started, never see a
// torn one.
//
// # Memory reclamation
//
// Records are ordinary Go objects; a deleted record stays alive for as long
// as a reader that loaded its pointer holds it, and the garbage collector
// reclaims it afterwards. That is the table's epoch scheme: no reader can
// see a record reused for another flow, because records are never reused.
// The same goes for the chains: a table starts with 64 (five slots each, a
// chain head is one cache line) and doubles them when it holds more than
// three flows a chain, up to what its capacity needs. A resize holds every
// writer off (writers share resizeMu, a resize takes it alone), copies the
// record pointers into the new chains and publishes them with one atomic
// store; readers never wait: one that loaded the old chains finishes on
// them, and the garbage collector frees them when the last one is done. A
// chain grows by an overflow bucket when its five slots are full.
//
// # Capacity and expiry
//
// A table holds at most the capacity it was made with: Insert refuses the
// next flow with ErrFull and counts it, and nothing else changes. Each
// record carries its last-activity time (an atomic, updated by the data
// path); Expire deletes every record idle past its timeout and hands it to
// a callback, so the forwarder can end the connection.
//
// It must never allocate on lookup, block a lookup, or call out while
// holding a bucket lock.
package flowtable
