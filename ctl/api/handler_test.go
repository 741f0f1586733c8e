package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"pvlink.dev/pvlink/ctl"
)

// memBackend is ctld's model without the host: changes commit in memory.
type memBackend struct{ m *ctl.State }

func (b *memBackend) Model() *ctl.State   { return b.m }
func (b *memBackend) Status() *ctl.Report { return nil }
func (b *memBackend) Change(op func(*ctl.State) error) (uint64, error) {
	next := b.m.Clone()
	if err := op(next); err != nil {
		return 0, err
	}
	next.Version++
	b.m = next
	return next.Version, nil
}

func demoBackend(t *testing.T) (*memBackend, *httptest.Server) {
	t.Helper()
	data, err := os.ReadFile("../../examples/demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	topo, err := ctl.ParseTopology("demo.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	m := &ctl.State{}
	if err := m.ApplyTopology(topo, "demo.yaml"); err != nil {
		t.Fatal(err)
	}
	m.API = ctl.APISettings{RequestsPerSecond: 1e6, Burst: 1e6} // these tests are not about the throttle
	b := &memBackend{m}
	srv := httptest.NewServer(New(b, slog.New(slog.NewTextHandler(io.Discard, nil))))
	t.Cleanup(srv.Close)
	return b, srv
}

func account(b *memBackend, name string) ctl.Account {
	for _, a := range b.m.Accounts {
		if a.Name == name {
			return a
		}
	}
	panic("no account " + name)
}

// call signs a Query call with the SDK's signer (for service, at when).
func call(t *testing.T, url string, a ctl.Account, service, body string, when time.Time) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url+"/", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	sum := sha256.Sum256([]byte(body))
	v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: a.AccessKeyID, SecretAccessKey: a.SecretAccessKey}, req, hex.EncodeToString(sum[:]), service, "us-east-1", when)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

func TestSignatureRefusalsCarryEachAPIsCodes(t *testing.T) {
	b, srv := demoBackend(t)
	consumer := account(b, "consumer")
	unknown := consumer
	unknown.AccessKeyID = "AKIAAAAAAAAAAAAAAAAA"
	tests := []struct {
		name, service string
		who           ctl.Account
		when          time.Time
		status        int
		code          string
	}{
		{"EC2, 20 minutes old", "ec2", consumer, time.Now().Add(-20 * time.Minute), 400, "<Code>RequestExpired</Code>"},
		{"EC2, unknown key", "ec2", unknown, time.Now(), 401, "<Code>AuthFailure</Code>"},
		{"ELBv2, unknown key", "elasticloadbalancing", unknown, time.Now(), 403, "<Code>InvalidClientTokenId</Code>"},
		{"ELBv2, 20 minutes old", "elasticloadbalancing", consumer, time.Now().Add(-20 * time.Minute), 403, "<Code>SignatureDoesNotMatch</Code>"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := "Action=DescribeVpcs&Version=2016-11-15"
			if tc.service != "ec2" {
				body = "Action=DescribeLoadBalancers&Version=2015-12-01"
			}
			status, out := call(t, srv.URL, tc.who, tc.service, body, tc.when)
			if status != tc.status || !strings.Contains(out, tc.code) {
				t.Fatalf("%d %s, want %d with %s", status, out, tc.status, tc.code)
			}
		})
	}
	// Unsigned.
	resp, err := http.Post(srv.URL+"/", "application/x-www-form-urlencoded", strings.NewReader("Action=DescribeVpcs&Version=2016-11-15"))
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 401 || !strings.Contains(string(out), "<Code>MissingAuthenticationToken</Code>") {
		t.Fatalf("unsigned: %d %s", resp.StatusCode, out)
	}
}

func TestThe51stInterfaceEndpointOfAVPCIsRefusedWithAWSsQuotaError(t *testing.T) {
	b, srv := demoBackend(t)
	consumer := account(b, "consumer")
	vpc, subnet, svc := b.m.VPCs[1].ID, b.m.VPCs[1].Subnets[0].ID, b.m.Services[0].ServiceName
	create := "Action=CreateVpcEndpoint&Version=2016-11-15&VpcEndpointType=Interface&VpcId=" + vpc + "&ServiceName=" + svc + "&SubnetId.1=" + subnet
	// The demo has one endpoint in the VPC already: 49 more reach 50.
	for i := 2; i <= 50; i++ {
		if status, out := call(t, srv.URL, consumer, "ec2", create, time.Now()); status != 200 {
			t.Fatalf("endpoint %d: %d %s", i, status, out)
		}
	}
	status, out := call(t, srv.URL, consumer, "ec2", create, time.Now())
	if status != 400 || !strings.Contains(out, "<Code>VpcEndpointLimitExceeded</Code>") {
		t.Fatalf("the 51st endpoint: %d %s", status, out)
	}
	if n := len(b.m.Endpoints); n != 50 {
		t.Fatalf("%d endpoints in the model, want 50", n)
	}
}
