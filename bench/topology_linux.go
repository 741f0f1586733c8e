package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"pvlink.dev/pvlink/nsenter"
)

// The kernel paths' topology: consumer -- router -- provider, three
// namespaces joined by veth pairs with EC2's jumbo MTU. The router forwards
// (kernel-routed), DNATs a VIP with an MSS clamp (kernel-dnat), or runs
// HAProxy (haproxy).
const (
	consumerIP    = "198.18.101.1"
	routerCIP     = "198.18.101.2" // the router on the consumer side
	vipIP         = "198.18.101.100"
	routerPIP     = "198.18.102.1" // the router on the provider side
	providerIP    = "198.18.102.2"
	benchMTU      = 9001
	haproxySink   = 8080
	haproxyRR     = 8081
	haproxySource = 8082
	haproxyConns  = 4000 // HAProxy cannot raise its fd limit here
)

// Kernel is the three-namespace topology.
type Kernel struct {
	Prefix                     string
	Consumer, Router, Provider string
	haproxy                    *os.Process
	haproxyDir                 string
}

// NewKernel builds the topology; Close removes it.
func NewKernel(prefix string) (_ *Kernel, err error) {
	k := &Kernel{Prefix: prefix, Consumer: prefix + "-c", Router: prefix + "-r", Provider: prefix + "-p"}
	defer func() {
		if err != nil {
			k.Close()
		}
	}()
	for _, ns := range []string{k.Consumer, k.Router, k.Provider} {
		if nsenter.Exists(ns) {
			return nil, fmt.Errorf("network namespace %s exists: remove it or pick another --prefix", ns)
		}
		if err := nsenter.Create(ns); err != nil {
			return nil, fmt.Errorf("create netns %s: %w", ns, err)
		}
		if err := nsenter.Sysctls(ns, map[string]string{
			"net/ipv4/ip_local_port_range": "1024 65535",
			"net/ipv4/tcp_tw_reuse":        "1",
			"net/ipv4/ip_forward":          "1",
		}); err != nil {
			return nil, err
		}
	}
	if err := k.link("c0", k.Consumer, consumerIP, "r0", k.Router, routerCIP); err != nil {
		return nil, err
	}
	if err := k.link("r1", k.Router, routerPIP, "p0", k.Provider, providerIP); err != nil {
		return nil, err
	}
	if err := addAddr(k.Router, "r0", vipIP+"/32"); err != nil {
		return nil, err
	}
	if err := defaultRoute(k.Consumer, routerCIP); err != nil {
		return nil, err
	}
	if err := defaultRoute(k.Provider, routerPIP); err != nil {
		return nil, err
	}
	// kernel-dnat: the VIP's ports go to the provider's servers, sourced
	// from the router (as a target sees an NLB node), with SYNs clamped to
	// MSS 8460 as a VPC endpoint does.
	ruleset := fmt.Sprintf(`table ip pvbench {
  chain pre {
    type nat hook prerouting priority dstnat;
    ip daddr %[1]s tcp dport 80 dnat to %[2]s:%[3]d
    ip daddr %[1]s tcp dport 81 dnat to %[2]s:%[4]d
    ip daddr %[1]s tcp dport 82 dnat to %[2]s:%[5]d
  }
  chain post {
    type nat hook postrouting priority srcnat;
    ip daddr %[2]s ct status dnat masquerade
  }
  chain clamp {
    type filter hook forward priority mangle;
    tcp flags syn tcp option maxseg size set 8460
  }
}
`, vipIP, providerIP, SinkPort, RRPort, SourcePort)
	if out, err := runIn(k.Router, strings.NewReader(ruleset), "nft", "-f", "-"); err != nil {
		return nil, fmt.Errorf("nft (install Debian's nftables): %v: %s", err, out)
	}
	return k, nil
}

// StartHAProxy runs HAProxy in the router: TCP mode, send-proxy-v2.
func (k *Kernel) StartHAProxy() error {
	dir, err := os.MkdirTemp("", "pvbench-haproxy-")
	if err != nil {
		return err
	}
	k.haproxyDir = dir
	cfg := fmt.Sprintf(`global
  maxconn %[1]d
  nbthread 2
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  maxconn %[1]d
listen sink
  bind %[2]s:%[3]d
  server s %[4]s:%[5]d send-proxy-v2
listen rr
  bind %[2]s:%[6]d
  server s %[4]s:%[7]d send-proxy-v2
listen source
  bind %[2]s:%[8]d
  server s %[4]s:%[9]d send-proxy-v2
`, haproxyConns, routerCIP, haproxySink, providerIP, SinkPPPort, haproxyRR, RRPPPort, haproxySource, SourcePPPort)
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return err
	}
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		return errors.New("haproxy is not installed (apt-get install haproxy; make bench does it)")
	}
	cmd := exec.Command(bin, "-db", "-f", path)
	logf, _ := os.Create(filepath.Join(dir, "haproxy.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := startIn(k.Router, cmd); err != nil {
		return fmt.Errorf("start haproxy: %w", err)
	}
	k.haproxy = cmd.Process
	go cmd.Wait()
	// Ready when it accepts.
	for i := 0; i < 200; i++ {
		if c, err := DialFrom(k.Consumer)(context.Background(), net.JoinHostPort(routerCIP, strconv.Itoa(haproxySink))); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	data, _ := os.ReadFile(filepath.Join(dir, "haproxy.log"))
	return fmt.Errorf("haproxy did not start: %s", data)
}

// HAProxyPID is HAProxy's process id, or 0.
func (k *Kernel) HAProxyPID() int {
	if k.haproxy == nil {
		return 0
	}
	return k.haproxy.Pid
}

// Close stops HAProxy and removes the namespaces (and with them the veths
// and nft rules).
func (k *Kernel) Close() {
	if k.haproxy != nil {
		k.haproxy.Signal(syscall.SIGTERM)
		for i := 0; i < 100 && syscall.Kill(k.haproxy.Pid, 0) == nil; i++ {
			time.Sleep(10 * time.Millisecond)
		}
		k.haproxy.Kill()
	}
	if k.haproxyDir != "" {
		os.RemoveAll(k.haproxyDir)
	}
	for _, ns := range []string{k.Consumer, k.Router, k.Provider} {
		if nsenter.Exists(ns) {
			nsenter.Delete(ns)
		}
	}
}

// link joins two namespaces with a veth pair and gives each end an address.
func (k *Kernel) link(aName, aNS, aIP, bName, bNS, bIP string) error {
	return nsenter.Do(aNS, func() error {
		bh, err := netns.GetFromName(bNS)
		if err != nil {
			return err
		}
		defer bh.Close()
		v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: aName, MTU: benchMTU}, PeerName: bName, PeerNamespace: netlink.NsFd(bh)}
		if err := netlink.LinkAdd(v); err != nil {
			return fmt.Errorf("veth %s-%s: %w", aName, bName, err)
		}
		if err := UpWithAddr(aName, aIP+"/24"); err != nil {
			return err
		}
		return nsenter.DoHandle(bh, func() error {
			l, err := netlink.LinkByName(bName)
			if err != nil {
				return err
			}
			if err := netlink.LinkSetMTU(l, benchMTU); err != nil {
				return err
			}
			return UpWithAddr(bName, bIP+"/24")
		})
	})
}

// UpWithAddr gives a link of the calling thread's namespace an address
// and sets it up.
func UpWithAddr(name, cidr string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return err
	}
	a, err := netlink.ParseAddr(cidr)
	if err != nil {
		return err
	}
	if err := netlink.AddrAdd(l, a); err != nil {
		return err
	}
	return netlink.LinkSetUp(l)
}

func addAddr(ns, link, cidr string) error {
	return nsenter.Do(ns, func() error {
		l, err := netlink.LinkByName(link)
		if err != nil {
			return err
		}
		a, err := netlink.ParseAddr(cidr)
		if err != nil {
			return err
		}
		return netlink.AddrAdd(l, a)
	})
}

func defaultRoute(ns, gw string) error {
	return nsenter.Do(ns, func() error {
		return netlink.RouteAdd(&netlink.Route{Gw: net.ParseIP(gw)})
	})
}

// startIn starts cmd with its process inside namespace ns: a child forked
// from a thread inside a namespace is born there.
func startIn(ns string, cmd *exec.Cmd) error {
	return nsenter.Do(ns, cmd.Start)
}

func runIn(ns string, stdin *strings.Reader, name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	cmd.Stdin = stdin
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := startIn(ns, cmd); err != nil {
		return nil, err
	}
	err := cmd.Wait()
	return []byte(out.String()), err
}
