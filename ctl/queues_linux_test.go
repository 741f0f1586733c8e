package ctl

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// sameFile tells a copy of a descriptor (a dup, as pidfd_getfd makes) from
// another open file behind the same number.
func TestSameFileTellsACopyFromAnotherFile(t *testing.T) {
	var a, b [2]int
	if err := unix.Pipe(a[:]); err != nil {
		t.Fatal(err)
	}
	if err := unix.Pipe(b[:]); err != nil {
		t.Fatal(err)
	}
	copyOfA, err := unix.Dup(a[0])
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, fd := range []int{a[0], a[1], b[0], b[1], copyOfA} {
			unix.Close(fd)
		}
	}()
	if !sameFile(os.Getpid(), a[0], copyOfA) {
		t.Error("a dup is not the same file")
	}
	if sameFile(os.Getpid(), b[0], copyOfA) {
		t.Error("another pipe is the same file")
	}
}
