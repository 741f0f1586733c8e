package api

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// AWS Signature Version 4, checked on the server side: the canonical
// request is rebuilt from exactly the headers the client says it signed,
// the body is hashed as read (once, with a size cap), the key is derived by
// the HMAC chain, and signatures are compared in constant time. No
// well-kept Go library does this side; the tests check it against the AWS
// SDK's own signer.

// maxBody caps a request's body: Query API calls are small.
const maxBody = 1 << 20

// maxSkew is how far a request's X-Amz-Date may be from now (AWS: 15 min).
const maxSkew = 15 * time.Minute

// Credentials are an access key and its secret, and whose they are.
type Credentials struct {
	AccessKeyID     string
	SecretAccessKey string
	Account         string // 12-digit account id
}

// authError is a refusal of a request's signature, with the code the
// service answers it with.
type authError struct {
	code string // a key into the service's error codes (see codeFor)
	msg  string
}

func (e *authError) Error() string { return e.msg }

// Why a signature is refused, independent of the service's spelling.
const (
	authMissing  = "missing"
	authBadKey   = "badkey"
	authBadSig   = "badsig"
	authExpired  = "expired"
	authMalformd = "malformed"
)

// sigv4 is a request's Authorization header, parsed.
type sigv4 struct {
	keyID, date, region, service string
	signedHeaders                []string
	signature                    string
}

func parseAuthorization(h string) (*sigv4, error) {
	const prefix = "AWS4-HMAC-SHA256 "
	if !strings.HasPrefix(h, prefix) {
		return nil, &authError{authMalformd, "the Authorization header is not AWS4-HMAC-SHA256"}
	}
	s := &sigv4{}
	for _, part := range strings.Split(strings.TrimPrefix(h, prefix), ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return nil, &authError{authMalformd, "the Authorization header has a part without '=': " + part}
		}
		switch k {
		case "Credential":
			f := strings.Split(v, "/")
			if len(f) != 5 || f[4] != "aws4_request" {
				return nil, &authError{authMalformd, "the credential scope must be KEY/DATE/REGION/SERVICE/aws4_request, got " + v}
			}
			s.keyID, s.date, s.region, s.service = f[0], f[1], f[2], f[3]
		case "SignedHeaders":
			s.signedHeaders = strings.Split(v, ";")
		case "Signature":
			s.signature = v
		}
	}
	if s.keyID == "" || len(s.signedHeaders) == 0 || s.signature == "" {
		return nil, &authError{authMalformd, "the Authorization header lacks Credential, SignedHeaders or Signature"}
	}
	return s, nil
}

// verify checks a request's signature against the keys lookup knows and
// returns the caller's credentials and the request's body (read once).
// service is the signing name the API answers to.
func verify(r *http.Request, service string, now time.Time, lookup func(keyID string) (Credentials, bool)) (Credentials, []byte, string, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return Credentials{}, nil, "", &authError{authMalformd, "reading the request body: " + err.Error()}
	}
	if len(body) > maxBody {
		return Credentials{}, nil, "", &authError{authMalformd, "the request body is over 1 MiB"}
	}
	h := r.Header.Get("Authorization")
	if h == "" {
		return Credentials{}, body, "", &authError{authMissing, "Request is missing Authentication Token"}
	}
	s, err := parseAuthorization(h)
	if err != nil {
		return Credentials{}, body, "", err
	}
	if s.service != service {
		return Credentials{}, body, s.region, &authError{authBadSig, fmt.Sprintf("Credential should be scoped to correct service: '%s'.", service)}
	}
	creds, ok := lookup(s.keyID)
	if !ok {
		return Credentials{}, body, s.region, &authError{authBadKey, "The security token included in the request is invalid."}
	}
	amzDate := r.Header.Get("X-Amz-Date")
	t, err := time.Parse("20060102T150405Z", amzDate)
	if err != nil {
		return Credentials{}, body, s.region, &authError{authMalformd, "X-Amz-Date is missing or not YYYYMMDDTHHMMSSZ: " + amzDate}
	}
	if d := now.Sub(t); d > maxSkew || d < -maxSkew {
		return Credentials{}, body, s.region, &authError{authExpired, fmt.Sprintf("Request has expired: signed at %s, which is more than 15 minutes from the server's time %s", t.Format(time.RFC3339), now.UTC().Format(time.RFC3339))}
	}
	if s.date != amzDate[:8] {
		return Credentials{}, body, s.region, &authError{authBadSig, "the credential scope's date is not the request's X-Amz-Date"}
	}
	canonical, err := canonicalRequest(r, s.signedHeaders, body)
	if err != nil {
		return Credentials{}, body, s.region, err
	}
	scope := strings.Join([]string{s.date, s.region, s.service, "aws4_request"}, "/")
	sum := sha256.Sum256([]byte(canonical))
	toSign := "AWS4-HMAC-SHA256\n" + amzDate + "\n" + scope + "\n" + hex.EncodeToString(sum[:])
	key := hmacSHA256([]byte("AWS4"+creds.SecretAccessKey), s.date)
	for _, part := range []string{s.region, s.service, "aws4_request"} {
		key = hmacSHA256(key, part)
	}
	want := hex.EncodeToString(hmacSHA256(key, toSign))
	if !hmac.Equal([]byte(want), []byte(s.signature)) {
		return Credentials{}, body, s.region, &authError{authBadSig, "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method."}
	}
	return creds, body, s.region, nil
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

// canonicalRequest rebuilds what the client signed. Go's net/http moves
// Host to r.Host and Content-Length to r.ContentLength; every other signed
// header must be present.
func canonicalRequest(r *http.Request, signed []string, body []byte) (string, error) {
	var b strings.Builder
	b.WriteString(r.Method)
	b.WriteByte('\n')
	path := r.URL.EscapedPath()
	if path == "" {
		path = "/"
	}
	b.WriteString(path)
	b.WriteByte('\n')
	b.WriteString(canonicalQuery(r.URL.Query()))
	b.WriteByte('\n')
	sorted := append([]string(nil), signed...)
	sort.Strings(sorted)
	for _, name := range sorted {
		var value string
		switch name {
		case "host":
			value = r.Host
		case "content-length":
			value = strconv.FormatInt(r.ContentLength, 10)
		default:
			vs, ok := r.Header[http.CanonicalHeaderKey(name)]
			if !ok {
				return "", &authError{authBadSig, "signed header " + name + " is not in the request"}
			}
			for i := range vs {
				vs[i] = strings.Join(strings.Fields(vs[i]), " ")
			}
			value = strings.Join(vs, ",")
		}
		b.WriteString(name)
		b.WriteByte(':')
		b.WriteString(value)
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.WriteString(strings.Join(signed, ";"))
	b.WriteByte('\n')
	sum := sha256.Sum256(body)
	b.WriteString(hex.EncodeToString(sum[:]))
	return b.String(), nil
}

func canonicalQuery(q url.Values) string {
	var pairs []string
	for k, vs := range q {
		for _, v := range vs {
			pairs = append(pairs, awsEscape(k)+"="+awsEscape(v))
		}
	}
	sort.Strings(pairs)
	return strings.Join(pairs, "&")
}

// awsEscape is RFC 3986 percent-encoding: everything but unreserved
// characters, spaces as %20.
func awsEscape(s string) string {
	var b bytes.Buffer
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}
