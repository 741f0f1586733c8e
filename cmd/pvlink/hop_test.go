package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"pvlink.dev/pvlink/bench"
	"pvlink.dev/pvlink/internal/fabrictest"
	"pvlink.dev/pvlink/nsenter"
	"pvlink.dev/pvlink/peer"
)

// The ethtool commands that turn a device's TCP segmentation offload and
// generic segmentation offload off, and read GSO back.
const (
	ethtoolSTSO = 0x1f
	ethtoolSGSO = 0x24
	ethtoolGGSO = 0x23
)

// ethtool runs one ethtool_value command on a device of the calling
// thread's namespace (the ioctl ethtool -K makes).
func ethtool(dev string, cmd, data uint32) (uint32, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	value := struct{ cmd, data uint32 }{cmd, data}
	var ifr struct {
		name [unix.IFNAMSIZ]byte
		data unsafe.Pointer
		_    [16]byte
	}
	copy(ifr.name[:], dev)
	ifr.data = unsafe.Pointer(&value)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	runtime.KeepAlive(&value)
	if errno != 0 {
		return 0, errno
	}
	return value.data, nil
}

// wireWatch records, from a packet socket on one device, the largest IPv4
// packet the device sent and the MSS of each SYN-ACK it sent. (gopacket's
// EthernetHandle reads without a timeout, so it could not be stopped.)
type wireWatch struct {
	largest  atomic.Int64
	packets  atomic.Int64
	dropped  atomic.Int64 // by the packet socket: not seen
	mu       sync.Mutex
	synAckMS []int
	stop     atomic.Bool
	done     chan struct{}
}

func watchWire(t *testing.T, ns, dev string) *wireWatch {
	t.Helper()
	var fd int
	if err := nsenter.Do(ns, func() error {
		l, err := netlink.LinkByName(dev)
		if err != nil {
			return err
		}
		proto := int(uint16(unix.ETH_P_ALL)<<8 | uint16(unix.ETH_P_ALL)>>8) // network order
		if fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, proto); err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: uint16(proto), Ifindex: l.Attrs().Index})
	}); err != nil {
		t.Fatal(err)
	}
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 200000})
	// Room for a burst of full-sized packets: the socket queues them
	// whole, and one it drops is a packet the test would not judge.
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 512<<20)
	w := &wireWatch{done: make(chan struct{})}
	go func() {
		defer close(w.done)
		defer unix.Close(fd)
		defer func() {
			if st, err := unix.GetsockoptTpacketStats(fd, unix.SOL_PACKET, unix.PACKET_STATISTICS); err == nil {
				w.dropped.Store(int64(st.Drops))
			}
		}()
		buf := make([]byte, 128) // the headers; MSG_TRUNC gives the length
		for !w.stop.Load() {
			n, from, err := unix.Recvfrom(fd, buf, unix.MSG_TRUNC)
			if err != nil {
				continue // the timeout: look at stop
			}
			if ll, ok := from.(*unix.SockaddrLinklayer); !ok || ll.Pkttype != unix.PACKET_OUTGOING || n < 14+20 {
				continue
			}
			ip := buf[14:]
			if ip[0]>>4 != 4 {
				continue
			}
			w.packets.Add(1)
			if size := int64(n - 14); size > w.largest.Load() {
				w.largest.Store(size)
			}
			ihl := int(ip[0]&0xf) * 4
			if ip[9] == unix.IPPROTO_TCP && len(ip) >= ihl+24 {
				tcp := ip[ihl:]
				if tcp[13]&0x12 == 0x12 && tcp[20] == 2 { // SYN-ACK, MSS option first
					w.mu.Lock()
					w.synAckMS = append(w.synAckMS, int(binary.BigEndian.Uint16(tcp[22:])))
					w.mu.Unlock()
				}
			}
		}
	}()
	t.Cleanup(func() { w.close() })
	return w
}

func (w *wireWatch) close() {
	w.stop.Store(true)
	<-w.done
}

func TestADownloadOneRoutedHopBehindTheConsumerIsCutIntoPacketsOfAtMost8500Bytes(t *testing.T) {
	f := fabrictest.Up(t, demoTopology(t))
	consumer := f.Netns(t, "consumer")
	eni := f.Status.Endpoints[0].ENIs[0]

	// A client namespace one routed hop behind the consumer VPC's, on a
	// veth whose consumer side has segmentation offloads off: what the
	// consumer's kernel forwards there, it must cut into wire packets.
	hop := "pvlt-" + f.Name + "-hop"
	if err := nsenter.Create(hop); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nsenter.Delete(hop) }) // its veth goes with it
	if err := nsenter.Do(consumer, func() error {
		h, err := netns.GetFromName(hop)
		if err != nil {
			return err
		}
		defer h.Close()
		v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "hop0", MTU: 9001}, PeerName: "hop1", PeerNamespace: netlink.NsFd(h)}
		if err := netlink.LinkAdd(v); err != nil {
			return err
		}
		if err := bench.UpWithAddr("hop0", "198.18.200.1/30"); err != nil {
			return err
		}
		for _, cmd := range []uint32{ethtoolSTSO, ethtoolSGSO} {
			if _, err := ethtool("hop0", cmd, 0); err != nil {
				return err
			}
		}
		if gso, err := ethtool("hop0", ethtoolGGSO, 0); err != nil || gso != 0 {
			return fmt.Errorf("GSO on hop0 is still %d (%v)", gso, err)
		}
		return nsenter.DoHandle(h, func() error {
			l, err := netlink.LinkByName("hop1")
			if err != nil {
				return err
			}
			if err := netlink.LinkSetMTU(l, 9001); err != nil {
				return err
			}
			if err := bench.UpWithAddr("hop1", "198.18.200.2/30"); err != nil {
				return err
			}
			return netlink.RouteAdd(&netlink.Route{Gw: netip.MustParseAddr("198.18.200.1").AsSlice()})
		})
	}); err != nil {
		t.Fatal(err)
	}
	if err := nsenter.Sysctls(consumer, map[string]string{"net/ipv4/ip_forward": "1"}); err != nil {
		t.Fatal(err)
	}

	w := watchWire(t, consumer, "hop0")
	const size = 64 << 20
	c := &peer.Client{Addr: eni.IP + ":80", Bytes: size, Timeout: 60 * time.Second, Dial: fabrictest.DialFrom(hop)}
	res, err := c.Run(context.Background())
	if err != nil || !res.Intact {
		t.Fatalf("64 MiB through the hop: %v", err)
	}
	w.close()
	cs := eniCounters(t, f, eni)
	t.Logf("64 MiB each way in %.2fs; hop0 sent %d packets, the largest %d bytes; the forwarder wrote %d frames standing for %d packets, the largest %d bytes",
		res.Seconds, w.packets.Load(), w.largest.Load(), cs.TunWrites, cs.TunWritePackets, cs.LargestWirePacket)

	if got := w.largest.Load(); got > 8500 || got < 8000 {
		t.Errorf("the largest packet on the wire towards the client: %d bytes, want full-sized ones of at most 8500", got)
	}
	if w.dropped.Load() != 0 || w.packets.Load() < size/8460 {
		t.Errorf("%d packets seen, %d dropped by the capture, for %d bytes: the capture missed part of the download", w.packets.Load(), w.dropped.Load(), size)
	}
	// The forwarder did hand the consumer's kernel frames of several
	// packets (else nothing was cut), and says how large their packets are.
	if cs.TunWritePackets <= cs.TunWrites {
		t.Errorf("the forwarder wrote %d frames for %d packets: no segmentation-offload frames", cs.TunWrites, cs.TunWritePackets)
	}
	if cs.LargestWirePacket > 8500 || cs.LargestWirePacket != w.largest.Load() {
		t.Errorf("the forwarder's largest packet %d, the wire's %d", cs.LargestWirePacket, w.largest.Load())
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.synAckMS) == 0 {
		t.Fatal("no SYN-ACK crossed the hop")
	}
	for _, mss := range w.synAckMS {
		if mss != 8460 {
			t.Errorf("a SYN-ACK offered MSS %d, want 8460", mss)
		}
	}
}
