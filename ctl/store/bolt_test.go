package store

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func open(t *testing.T, path string) *Bolt {
	t.Helper()
	s, err := OpenBolt(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestACommittedChangeSurvivesReopeningAndAFailedOneLeavesNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s := open(t, path)
	rev, err := s.Update(func(tx Tx) error { return tx.Put("endpoint/a", []byte("1")) })
	if err != nil || rev != 1 {
		t.Fatalf("first update: rev %d, err %v", rev, err)
	}
	_, err = s.Update(func(tx Tx) error {
		tx.Put("endpoint/b", []byte("2"))
		return errors.New("refused")
	})
	if err == nil {
		t.Fatal("a failing transaction reported success")
	}
	if rev, _ := s.Update(func(tx Tx) error { return tx.Put("endpoint/a", []byte("1")) }); rev != 1 {
		t.Fatalf("writing the same value made revision %d, want 1 (no change)", rev)
	}
	s.Close()

	s = open(t, path)
	defer s.Close()
	s.View(func(tx ReadTx) error {
		if tx.Rev() != 1 {
			t.Errorf("reopened at revision %d, want 1", tx.Rev())
		}
		if v, ok := tx.Get("endpoint/a"); !ok || string(v) != "1" {
			t.Errorf("endpoint/a = %q, %v", v, ok)
		}
		if _, ok := tx.Get("endpoint/b"); ok {
			t.Error("endpoint/b of the failed transaction is there")
		}
		return nil
	})
}

func TestListGivesRecordsOfAPrefixInKeyOrder(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "state.db"))
	defer s.Close()
	s.Update(func(tx Tx) error {
		for _, k := range []string{"vpc/b", "vpc/a", "vpce/x", "tg/a"} {
			tx.Put(k, []byte(k))
		}
		return nil
	})
	var keys []string
	s.View(func(tx ReadTx) error {
		return tx.List("vpc/", func(k string, _ []byte) error { keys = append(keys, k); return nil })
	})
	if len(keys) != 2 || keys[0] != "vpc/a" || keys[1] != "vpc/b" {
		t.Fatalf("List(vpc/) = %v", keys)
	}
}

func TestWatchResumesFromARevisionAndFollowsNewChanges(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "state.db"))
	defer s.Close()
	for _, k := range []string{"a", "b", "c"} {
		if _, err := s.Update(func(tx Tx) error { return tx.Put(k, []byte(k)) }); err != nil {
			t.Fatal(err)
		}
	}
	s.Update(func(tx Tx) error { return tx.Delete("a") })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	w := s.Watch(ctx, 1)
	var got []Change
	for len(got) < 3 {
		got = append(got, <-w)
	}
	if got[0].Rev != 2 || got[0].Put[0] != "b" || got[2].Rev != 4 || got[2].Deleted[0] != "a" {
		t.Fatalf("watch from 1 gave %+v", got)
	}
	go s.Update(func(tx Tx) error { return tx.Put("d", nil) })
	if ch := <-w; ch.Rev != 5 || ch.Put[0] != "d" {
		t.Fatalf("live change: %+v", ch)
	}
}

func TestASecondOpenOfTheSameFileIsRefusedWithAReason(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s := open(t, path)
	defer s.Close()
	if _, err := OpenBolt(path, 100*time.Millisecond); err == nil {
		t.Fatal("a second open succeeded")
	} else if want := "another process holds it"; !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v, want %q", err, want)
	}
}
