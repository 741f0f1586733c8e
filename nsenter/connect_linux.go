package nsenter

import (
	"context"
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Connect connects non-blocking socket fd (file, raw: its os.File and
// that file's RawConn) to sa without blocking a thread, within limit and
// ctx: a connect still in progress when the system call returns (over a
// namespace's loopback it mostly is not) waits on Go's netpoller for the
// socket to be writable. Only a connect still in progress sets a deadline;
// nothing is allocated for one the system call completed.
func Connect(ctx context.Context, file *os.File, raw syscall.RawConn, fd int, sa unix.Sockaddr, limit time.Duration) error {
	cerr := unix.Connect(fd, sa)
	if cerr != unix.EINPROGRESS {
		return cerr
	}
	if done, err := Connected(fd); done {
		return err
	}
	deadline := time.Now().Add(limit)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	file.SetWriteDeadline(deadline)
	defer file.SetWriteDeadline(time.Time{})
	if ctx.Done() != nil { // a context that can end (a health check's, a dial's); the forwarder's own dials pass one that cannot
		stop := context.AfterFunc(ctx, func() { file.SetWriteDeadline(time.Unix(1, 0)) })
		defer stop()
	}
	var result error
	werr := raw.Write(func(fd uintptr) bool {
		done, err := Connected(int(fd))
		result = err
		return done
	})
	if werr != nil {
		if err := ctx.Err(); err != nil {
			return err
		}
		if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
			return context.DeadlineExceeded // the write deadline, set to it, fired first
		}
		return werr
	}
	return result
}

// Connected reports whether a connect in progress has ended, and how.
// The socket's TCP state says it in one system call in the usual cases
// (SYN_SENT: not yet; ESTABLISHED: connected), where the net package asks
// SO_ERROR and then the peer's address; SO_ERROR is asked only when the
// handshake did not leave the socket established.
func Connected(fd int) (bool, error) {
	state, err := tcpState(fd)
	if err != nil {
		return true, err
	}
	switch state {
	case unix.BPF_TCP_SYN_SENT:
		return false, nil
	case unix.BPF_TCP_ESTABLISHED:
		return true, nil
	}
	soerr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
	switch {
	case err != nil:
		return true, err
	case soerr != 0:
		return true, unix.Errno(soerr) // refused, unreachable, timed out
	case state == unix.BPF_TCP_CLOSE:
		return true, unix.ECONNABORTED // closed, no error left to say why
	default:
		// Established and already closed by the target (CLOSE_WAIT):
		// connected; the relay reads the end.
		return true, nil
	}
}

// tcpState is the TCP state of socket fd (BPF_TCP_*): the first byte of
// its tcp_info, all that is asked for, so nothing is allocated.
func tcpState(fd int) (uint8, error) {
	var state uint8
	size := uint32(1)
	_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.IPPROTO_TCP, unix.TCP_INFO,
		uintptr(unsafe.Pointer(&state)), uintptr(unsafe.Pointer(&size)), 0)
	if errno != 0 {
		return 0, errno
	}
	return state, nil
}
