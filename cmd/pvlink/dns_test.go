package main

import (
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"pvlink.dev/pvlink/ctl"
	"pvlink.dev/pvlink/ctl/dns"
	"pvlink.dev/pvlink/internal/fabrictest"
)

// inNetns runs a stock tool in a namespace as a user would: ip netns exec,
// which also puts the VPC's resolv.conf in place.
func inNetns(t *testing.T, ns string, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...).CombinedOutput()
	return string(out), err
}

// dig answers a name's records of one type, sorted ("" lines dropped).
func dig(t *testing.T, ns, name, typ string) []string {
	t.Helper()
	if _, err := exec.LookPath("dig"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("dig is not installed (make test installs bind9-dnsutils)")
		}
		t.Skip("needs dig (apt-get install bind9-dnsutils)")
	}
	out, err := inNetns(t, ns, "dig", "+short", "+time=1", "+tries=2", name, typ)
	if err != nil {
		t.Fatalf("dig %s %s in %s: %v\n%s", name, typ, ns, err, out)
	}
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l != "" {
			got = append(got, l)
		}
	}
	slices.Sort(got)
	return got
}

func enisOf(e ctl.EndpointState) (v4, v6 []string) {
	for _, eni := range e.ENIs {
		if eni.IP != "" {
			v4 = append(v4, eni.IP)
		}
		if eni.IPv6 != "" {
			v6 = append(v6, eni.IPv6)
		}
	}
	slices.Sort(v4)
	slices.Sort(v6)
	return
}

// TestEndpointNamesResolveEverywhereToTheirENIs: an endpoint's regional
// and zonal names answer with its ENIs in its VPC, and, as AWS publishes
// them in public DNS, in any other VPC and at the fabric's public server
// (still the ENIs' private addresses); names outside the fabric are
// refused.
func TestEndpointNamesResolveEverywhereToTheirENIs(t *testing.T) {
	f := fabrictest.Up(t, demoTopology(t))
	consumer, provider := f.Netns(t, "consumer"), f.Netns(t, "provider")
	e := f.Status.Endpoints[0]
	v4, _ := enisOf(e)
	regional := e.DNSNames[0]
	if got := dig(t, consumer, regional, "A"); !slices.Equal(got, v4) {
		t.Fatalf("the regional name gives %v, want both ENIs %v", got, v4)
	}
	for i, eni := range e.ENIs {
		if got := dig(t, consumer, e.DNSNames[i+1], "A"); !slices.Equal(got, []string{eni.IP}) {
			t.Fatalf("the zonal name of %s gives %v, want %s", eni.AZ, got, eni.IP)
		}
		if name := map[string]string{"use1-az1": "us-east-1a", "use1-az2": "us-east-1b"}[eni.AZ]; !strings.Contains(e.DNSNames[i+1], "-"+name+".") {
			t.Fatalf("zonal name %s does not name its AZ %s (%s)", e.DNSNames[i+1], eni.AZ, name)
		}
	}
	// The stock resolver path (getent) and a client by name.
	if out, err := inNetns(t, consumer, "getent", "hosts", regional); err != nil || !strings.Contains(out, v4[0]) {
		t.Fatalf("getent hosts %s: %v\n%s", regional, err, out)
	}
	// (The demo's target echoes and keeps the connection open, so curl
	// ends at its time limit: what matters is what the target reported.)
	if out, err := inNetns(t, consumer, "curl", "-s", "--http0.9", "-m", "2", "http://"+regional+"/"); !strings.Contains(out, `"target":"web"`) {
		t.Fatalf("curl by the regional name: %v\n%s", err, out)
	}
	// The names are public: from the provider's VPC and from the host
	// (the public server) they give the same private addresses.
	if got := dig(t, provider, regional, "A"); !slices.Equal(got, v4) {
		t.Fatalf("from the provider's VPC the regional name gives %v, want %v", got, v4)
	}
	if got := dig(t, provider, e.DNSNames[1], "A"); !slices.Equal(got, []string{e.ENIs[0].IP}) {
		t.Fatalf("from the provider's VPC the zonal name gives %v, want %s", got, e.ENIs[0].IP)
	}
	m, err := dns.Lookup(f.Status.DNS.Public, regional, mdns.TypeA)
	if err != nil {
		t.Fatal(err)
	}
	var public []string
	for _, rr := range m.Answer {
		if a, ok := rr.(*mdns.A); ok {
			public = append(public, a.A.String())
		}
	}
	slices.Sort(public)
	if !slices.Equal(public, v4) || !m.Authoritative {
		t.Fatalf("the public server answers %v (authoritative %v) for the regional name, want %v", public, m.Authoritative, v4)
	}
	// An endpoint name that does not exist is NXDOMAIN there too.
	if m, err := dns.Lookup(f.Status.DNS.Public, "vpce-0000000000000000-00000000."+strings.SplitN(regional, ".", 2)[1], mdns.TypeA); err != nil || m.Rcode != mdns.RcodeNameError {
		t.Fatalf("a missing endpoint name at the public server: %v %v", m, err)
	}
	// Names that are not the fabric's are refused, not looked up.
	if out, _ := inNetns(t, consumer, "dig", "+time=1", "+tries=1", "www.example.com", "A"); !strings.Contains(out, "status: REFUSED") {
		t.Fatalf("a name outside the fabric:\n%s", out)
	}
}

func TestDNSRecordIPTypeChoosesAAndAAAA(t *testing.T) {
	for _, tc := range []struct {
		ipType, recordType string
		a, aaaa            bool
	}{
		{"ipv4", "", true, false},
		{"ipv6", "", false, true},
		{"dualstack", "", true, true},
		{"dualstack", "ipv6", false, true},
	} {
		t.Run(tc.ipType+"/"+tc.recordType, func(t *testing.T) {
			topo := dualstackTopology(t, tc.ipType)
			if tc.recordType != "" {
				before := topo
				topo = strings.Replace(topo, "    ip_address_type: "+tc.ipType+"\n    subnet_configurations:", "    ip_address_type: "+tc.ipType+"\n    dns_record_ip_type: "+tc.recordType+"\n    subnet_configurations:", 1)
				if topo == before {
					t.Fatal("the dualstack topology no longer reads as this test expects")
				}
			}
			f := fabrictest.Up(t, topo)
			e := f.Status.Endpoints[0]
			v4, v6 := enisOf(e)
			consumer := f.Netns(t, "consumer")
			gotA, gotAAAA := dig(t, consumer, e.DNSNames[0], "A"), dig(t, consumer, e.DNSNames[0], "AAAA")
			if tc.a != (len(gotA) > 0) || tc.aaaa != (len(gotAAAA) > 0) {
				t.Fatalf("A %v, AAAA %v; want A %v, AAAA %v", gotA, gotAAAA, tc.a, tc.aaaa)
			}
			if tc.a && !slices.Equal(gotA, v4) || tc.aaaa && !slices.Equal(gotAAAA, v6) {
				t.Fatalf("A %v (ENIs %v), AAAA %v (ENIs %v)", gotA, v4, gotAAAA, v6)
			}
		})
	}
}

func TestTheRegionalNameDropsAnAZWhoseForwarderIsDownAndTakesItBack(t *testing.T) {
	f := fabrictest.Up(t, demoTopology(t))
	consumer := f.Netns(t, "consumer")
	e := f.Status.Endpoints[0]
	var az2 ctl.ForwarderReport
	for _, fw := range f.Status.Forwarders {
		if fw.AZ == "use1-az2" {
			az2 = fw
		}
	}
	// SIGSTOP: the process stays (nothing restarts it) but answers
	// nothing, as a wedged forwarder would.
	if err := syscall.Kill(az2.PID, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(az2.PID, syscall.SIGCONT)
	start := time.Now()
	waitUntil(t, 5*time.Second, "the regional name down to az1's ENI", func() bool {
		return slices.Equal(dig(t, consumer, e.DNSNames[0], "A"), []string{e.ENIs[0].IP})
	})
	t.Logf("az2 left the regional answer %s after its forwarder stopped", time.Since(start).Round(10*time.Millisecond))
	if got := dig(t, consumer, e.DNSNames[2], "A"); !slices.Equal(got, []string{e.ENIs[1].IP}) {
		t.Fatalf("az2's zonal name gives %v while az2 is down, want it kept", got)
	}
	syscall.Kill(az2.PID, syscall.SIGCONT)
	v4, _ := enisOf(e)
	waitUntil(t, 5*time.Second, "az2 back in the regional name", func() bool {
		return slices.Equal(dig(t, consumer, e.DNSNames[0], "A"), v4)
	})
}

// privateDNSDemo is the demo whose service has the private DNS name
// api.example.com, in the public zone example.com of the provider's.
func privateDNSDemo(t *testing.T) string {
	topo := strings.Replace(demoTopology(t), "    load_balancers: [web-nlb]\n", "    load_balancers: [web-nlb]\n    private_dns_name: api.example.com\n", 1)
	return strings.Replace(topo, "\nvpcs:", "\npublic_dns_zones:\n  - {name: example.com, account: provider}\n\nvpcs:", 1)
}

// publishTXT puts the verification record of the service's private DNS
// name in the provider's public zone.
func publishTXT(t *testing.T, f *fabrictest.Fabric, svc ctl.ServiceState) {
	pvlink(t, "dns", "set-record", f.Name, "--account", "provider", "--zone", "example.com",
		"--name", svc.PrivateDNS.TXTName+".example.com", "--type", "TXT", "--value", svc.PrivateDNS.TXTValue)
}

func TestAPrivateDNSNameAnswersOnlyOnceVerifiedAndOnlyInItsVPC(t *testing.T) {
	topo := privateDNSDemo(t)
	f := fabrictest.Up(t, topo)
	consumer, provider := f.Netns(t, "consumer"), f.Netns(t, "provider")
	svc := f.Status.Services[0]
	if svc.PrivateDNS == nil || svc.PrivateDNS.State != ctl.DNSPendingVerification || !strings.HasPrefix(svc.PrivateDNS.TXTValue, "vpce:") {
		t.Fatalf("the service's private DNS name: %+v", svc.PrivateDNS)
	}
	// Not verified: a consumer cannot enable it.
	enabled := strings.Replace(topo, "    ip_address_type: ipv4\n    subnet_configurations:", "    ip_address_type: ipv4\n    private_dns_enabled: true\n    subnet_configurations:", 1)
	if enabled == topo {
		t.Fatal("the demo's endpoint no longer reads as this test expects")
	}
	os.WriteFile(f.File, []byte(strings.ReplaceAll(enabled, "NAME", f.Name)), 0o644)
	if out, err := fabrictest.Run(t, "fabric", "apply", "-f", f.File); err == nil || !strings.Contains(out, "is pendingVerification: it must be verified") {
		t.Fatalf("enabling an unverified name: %v\n%s", err, out)
	}
	// Verification without the record fails; with it, it succeeds.
	if out, err := fabrictest.Run(t, "dns", "verify", f.Name, "web"); err != nil || !strings.Contains(out, "private DNS name failed") {
		t.Fatalf("verify without the record: %v\n%s", err, out)
	}
	publishTXT(t, f, svc)
	// The record is in the public DNS, over DNS, from the consumer's VPC
	// too (its resolver forwards the public zones).
	if got := dig(t, consumer, svc.PrivateDNS.TXTName+".example.com", "TXT"); len(got) != 1 || !strings.Contains(got[0], svc.PrivateDNS.TXTValue) {
		t.Fatalf("the TXT record through the consumer's resolver: %v", got)
	}
	if out, err := fabrictest.Run(t, "dns", "verify", f.Name, "web"); err != nil || !strings.Contains(out, "private DNS name verified") {
		t.Fatalf("verify with the record: %v\n%s", err, out)
	}
	pvlink(t, "fabric", "apply", "-f", f.File)
	f.Refresh(t)
	v4, _ := enisOf(f.Status.Endpoints[0])
	if got := dig(t, consumer, "api.example.com", "A"); !slices.Equal(got, v4) {
		t.Fatalf("api.example.com in the consumer VPC gives %v, want the ENIs %v", got, v4)
	}
	if out, err := inNetns(t, consumer, "curl", "-s", "--http0.9", "-m", "2", "http://api.example.com/"); !strings.Contains(out, `"target":"web"`) {
		t.Fatalf("curl http://api.example.com/ in the consumer VPC: %v\n%s", err, out)
	}
	if got := dig(t, provider, "api.example.com", "A"); len(got) != 0 {
		t.Fatalf("api.example.com in the provider VPC gives %v, want nothing", got)
	}
	// Verification lost: the endpoint that has the name keeps it.
	pvlink(t, "dns", "set-record", f.Name, "--account", "provider", "--zone", "example.com",
		"--name", svc.PrivateDNS.TXTName+".example.com", "--type", "TXT", "--value", "")
	pvlink(t, "dns", "verify", f.Name, "web")
	if got := dig(t, consumer, "api.example.com", "A"); !slices.Equal(got, v4) {
		t.Fatalf("after verification was lost the enabled endpoint's name gives %v", got)
	}
}

// silent reports whether a query for name in namespace ns got no answer at
// all (dig: no reply from the server), as from a VPC's resolver with its
// DNS support off.
func silent(t *testing.T, ns, name string) bool {
	t.Helper()
	out, err := inNetns(t, ns, "dig", "+time=1", "+tries=1", name, "A")
	return err != nil && strings.Contains(out, "timed out")
}

// The consumer's VPC DNS attributes through the AWS CLI: private DNS can be
// enabled only with DNS support and DNS hostnames on (AWS's refusal), the
// private name answers only while both are, and the resolver answers
// nothing at all with DNS support off.
func TestPrivateDNSFollowsTheVPCsDNSAttributes(t *testing.T) {
	f := fabrictest.Up(t, privateDNSDemo(t))
	ns := f.Netns(t, "consumer")
	svc, e := f.Status.Services[0], f.Status.Endpoints[0]
	publishTXT(t, f, svc)
	pvlink(t, "dns", "verify", f.Name, "web")
	consumer := awsAs(t, f, "consumer")
	v4, _ := enisOf(e)
	regional := e.DNSNames[0]
	type attrValue struct{ Value bool }
	attribute := func(name string) bool {
		t.Helper()
		var out struct {
			VpcId                                string
			EnableDnsSupport, EnableDnsHostnames *attrValue
		}
		consumer.do(&out, "describe-vpc-attribute", "--vpc-id", e.VPCID, "--attribute", name)
		v := out.EnableDnsSupport
		if name == "enableDnsHostnames" {
			v = out.EnableDnsHostnames
		}
		if out.VpcId != e.VPCID || v == nil {
			t.Fatalf("describe-vpc-attribute %s: %+v", name, out)
		}
		return v.Value
	}
	set := func(flag string, on bool) { // the CLI's --enable-dns-support, --no-enable-dns-support ...
		t.Helper()
		if !on {
			flag = "--no-" + flag[2:]
		}
		consumer.do(nil, "modify-vpc-attribute", "--vpc-id", e.VPCID, flag)
	}
	if !attribute("enableDnsSupport") || !attribute("enableDnsHostnames") {
		t.Fatal("a topology's VPC has its DNS support or hostnames off")
	}
	set("--enable-dns-hostnames", false)
	if attribute("enableDnsHostnames") {
		t.Fatal("DNS hostnames still on after modify-vpc-attribute")
	}
	out := consumer.refused("InvalidParameter", "modify-vpc-endpoint", "--vpc-endpoint-id", e.ID, "--private-dns-enabled")
	if !strings.Contains(out, "Enabling private DNS requires both enableDnsSupport and enableDnsHostnames VPC attributes set to true for "+e.VPCID) {
		t.Fatalf("the refusal: %s", out)
	}
	set("--enable-dns-hostnames", true)
	consumer.do(nil, "modify-vpc-endpoint", "--vpc-endpoint-id", e.ID, "--private-dns-enabled")
	waitUntil(t, 5*time.Second, "api.example.com answering", func() bool { return slices.Equal(dig(t, ns, "api.example.com", "A"), v4) })
	// The resolver's other address, the same in every VPC.
	if out, err := inNetns(t, ns, "dig", "+short", "+time=1", "+tries=2", "@169.254.169.253", "api.example.com", "A"); err != nil || !slices.Equal(strings.Fields(out), v4) && !slices.Equal(strings.Fields(out), []string{v4[1], v4[0]}) {
		t.Fatalf("dig @169.254.169.253 api.example.com: %v\n%s", err, out)
	}

	// DNS hostnames off: the private name goes, the endpoint's own stay.
	set("--enable-dns-hostnames", false)
	waitUntil(t, 5*time.Second, "api.example.com gone", func() bool { return len(dig(t, ns, "api.example.com", "A")) == 0 })
	if got := dig(t, ns, regional, "A"); !slices.Equal(got, v4) {
		t.Fatalf("the regional name with DNS hostnames off: %v, want %v", got, v4)
	}
	// DNS support off: nothing answers; hostnames cannot come on.
	set("--enable-dns-support", false)
	waitUntil(t, 10*time.Second, "the resolver silent", func() bool { return silent(t, ns, regional) })
	consumer.refused("InvalidParameter", "modify-vpc-attribute", "--vpc-id", e.VPCID, "--enable-dns-hostnames")
	consumer.refused("InvalidParameterCombination", "modify-vpc-attribute", "--vpc-id", e.VPCID, "--enable-dns-support", "--enable-dns-hostnames")
	consumer.refused("InvalidParameterValue", "describe-vpc-attribute", "--vpc-id", e.VPCID, "--attribute", "enableClassicLink")
	awsAs(t, f, "provider").refused("InvalidVpcID.NotFound", "modify-vpc-attribute", "--vpc-id", e.VPCID, "--enable-dns-support")
	if status := pvlink(t, "fabric", "status", f.Name); !regexp.MustCompile(`consumer .* off +off\n`).MatchString(status) {
		t.Fatalf("fabric status does not show the consumer VPC's resolver and DNS hostnames off:\n%s", status)
	}

	// Both on again: every name answers as before.
	set("--enable-dns-support", true)
	set("--enable-dns-hostnames", true)
	waitUntil(t, 10*time.Second, "the resolver answering", func() bool { return !silent(t, ns, regional) })
	waitUntil(t, 5*time.Second, "api.example.com back", func() bool { return slices.Equal(dig(t, ns, "api.example.com", "A"), v4) })
}
