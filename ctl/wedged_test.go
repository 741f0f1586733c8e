package ctl

import (
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// Only a failure on the forwarder's side counts towards killing it: a
// status request that times out (a stopped or deadlocked forwarder), a
// socket nobody listens on, or none at all; ctld's own failure (out of
// descriptors) does not.
func TestOnlyTheForwardersSilenceCountsTowardsKillingIt(t *testing.T) {
	dir := t.TempDir()
	silent := filepath.Join(dir, "silent.sock")
	ln, err := net.Listen("unix", silent)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close() // accepted into the backlog, never answered
	refused := filepath.Join(dir, "refused.sock")
	gone, err := net.Listen("unix", refused)
	if err != nil {
		t.Fatal(err)
	}
	gone.(*net.UnixListener).SetUnlinkOnClose(false)
	gone.Close()
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"no answer", statusErr(t, silent), true},
		{"nobody listens", statusErr(t, refused), true},
		{"no socket", statusErr(t, filepath.Join(dir, "none.sock")), true},
		{"ctld out of descriptors", &net.OpError{Op: "dial", Net: "unix", Err: os.NewSyscallError("socket", syscall.EMFILE)}, false},
	} {
		if got := unanswered(tc.err); got != tc.want {
			t.Errorf("%s (%v): unanswered %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}

func statusErr(t *testing.T, sock string) error {
	t.Helper()
	_, err := forwarderStatus(sock)
	if err == nil {
		t.Fatalf("a status from %s", sock)
	}
	return err
}
