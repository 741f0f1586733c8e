package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

var testKeys = map[string]Credentials{
	"AKIAPVLINKCONSUMER01": {AccessKeyID: "AKIAPVLINKCONSUMER01", SecretAccessKey: "consumer-secret", Account: "444455556666"},
}

func lookupTest(id string) (Credentials, bool) { c, ok := testKeys[id]; return c, ok }

// signed makes an EC2 Query request signed by the AWS SDK's own signer.
func signed(t *testing.T, keyID, secret, body string, at time.Time) *http.Request {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:4566/", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	r.Header.Set("User-Agent", "aws-cli/2.9  botocore/1.29")
	sum := sha256.Sum256([]byte(body))
	err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: keyID, SecretAccessKey: secret}, r, hex.EncodeToString(sum[:]), "ec2", "us-east-1", at)
	if err != nil {
		t.Fatal(err)
	}
	// The server reads the body afresh.
	r.Body = httpBody(body)
	return r
}

func httpBody(s string) *readCloser { return &readCloser{bytes.NewReader([]byte(s))} }

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }

func TestSigV4AsTheAWSSDKSignsIt(t *testing.T) {
	now := time.Now()
	body := "Action=DescribeVpcEndpoints&Version=2016-11-15&VpcEndpointId.1=vpce-0123456789abcdef0"
	tests := []struct {
		name   string
		req    func() *http.Request
		reason string
	}{
		{"good", func() *http.Request { return signed(t, "AKIAPVLINKCONSUMER01", "consumer-secret", body, now) }, ""},
		{"wrong secret", func() *http.Request { return signed(t, "AKIAPVLINKCONSUMER01", "not-the-secret", body, now) }, authBadSig},
		{"unknown key", func() *http.Request { return signed(t, "AKIAUNKNOWNKEY000000", "consumer-secret", body, now) }, authBadKey},
		{"20 minutes old", func() *http.Request {
			return signed(t, "AKIAPVLINKCONSUMER01", "consumer-secret", body, now.Add(-20*time.Minute))
		}, authExpired},
		{"body changed after signing", func() *http.Request {
			r := signed(t, "AKIAPVLINKCONSUMER01", "consumer-secret", body, now)
			r.Body = httpBody(strings.Replace(body, "vpce-0123", "vpce-9999", 1))
			return r
		}, authBadSig},
		{"no signature", func() *http.Request {
			r := signed(t, "AKIAPVLINKCONSUMER01", "consumer-secret", body, now)
			r.Header.Del("Authorization")
			return r
		}, authMissing},
		{"signed for another service", func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:4566/", strings.NewReader(body))
			sum := sha256.Sum256([]byte(body))
			v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: "AKIAPVLINKCONSUMER01", SecretAccessKey: "consumer-secret"}, r, hex.EncodeToString(sum[:]), "s3", "us-east-1", now)
			r.Body = httpBody(body)
			return r
		}, authBadSig},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			creds, got, region, err := verify(tc.req(), "ec2", now, lookupTest)
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("a request the SDK signed was refused: %v", err)
				}
				if creds.Account != "444455556666" || string(got) != body || region != "us-east-1" {
					t.Fatalf("caller %+v, body %q, region %q", creds, got, region)
				}
				return
			}
			var ae *authError
			if !errors.As(err, &ae) || ae.code != tc.reason {
				t.Fatalf("err = %v, want reason %s", err, tc.reason)
			}
		})
	}
}
