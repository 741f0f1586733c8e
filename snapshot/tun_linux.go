package snapshot

import "golang.org/x/sys/unix"

// TUNFlags are the flags every ENI TUN is made (by ctld) and opened (by each
// forwarder worker) with: TUN mode, no packet information, a virtio-net
// header (so the kernel hands over GSO frames) and multiple queues (one per
// worker). The two must agree, or the open fails.
const TUNFlags = unix.IFF_TUN | unix.IFF_NO_PI | unix.IFF_VNET_HDR | unix.IFF_MULTI_QUEUE

// QueueTUN names the TUN a queue descriptor is attached to. A queue whose
// TUN was deleted (or detached from it) is refused (EBADFD).
func QueueTUN(fd int) (string, error) {
	ifr, err := unix.NewIfreq("")
	if err != nil {
		return "", err
	}
	if err := unix.IoctlIfreq(fd, unix.TUNGETIFF, ifr); err != nil {
		return "", err
	}
	return ifr.Name(), nil
}

// QueueNetns is the inode of the network namespace of the TUN that queue
// fd is attached to (TUNGETDEVNETNS): the same as nsenter.Inode's for the
// namespace the TUN is in.
func QueueNetns(fd int) (uint64, error) {
	nsfd, err := unix.IoctlRetInt(fd, unix.TUNGETDEVNETNS)
	if err != nil {
		return 0, err
	}
	defer unix.Close(nsfd)
	var st unix.Stat_t
	if err := unix.Fstat(nsfd, &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}
