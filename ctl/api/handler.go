package api

import (
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"pvlink.dev/pvlink/ctl"
	"pvlink.dev/pvlink/ctl/cloudwatch"
)

// Backend is what the API needs of ctld: the committed model, and changes
// through the model's operations (validated, checked by the forwarders,
// committed before they are answered).
type Backend interface {
	Model() *ctl.State
	Change(op func(*ctl.State) error) (uint64, error)
	// Status is the fabric with what runs (the forwarders, whose health
	// checks DescribeTargetHealth reports).
	Status() *ctl.Report
	// VerifyPrivateDNS checks a service's private DNS name over DNS.
	VerifyPrivateDNS(caller, serviceID string) (string, error)
	// CloudWatch is the fabric's metric history, up to date.
	CloudWatch() *cloudwatch.History
}

// Handler serves the AWS-compatible API.
type Handler struct {
	b   Backend
	log *slog.Logger
	now func() time.Time

	// limits throttle each account's calls (guarded by mu); throttled
	// counts the calls refused for it.
	mu        sync.Mutex
	limits    map[string]*rate.Limiter
	throttled atomic.Uint64

	queries queryStore // Logs Insights queries run
}

// ThrottledCalls counts the calls answered RequestLimitExceeded or
// Throttling.
func (h *Handler) ThrottledCalls() uint64 { return h.throttled.Load() }

// allow takes a token of the caller's bucket, made with the fabric's
// current settings.
func (h *Handler) allow(account string) bool {
	set := h.b.Model().API
	h.mu.Lock()
	l := h.limits[account]
	if l == nil || l.Limit() != rate.Limit(set.RequestsPerSecond) || l.Burst() != set.Burst {
		l = rate.NewLimiter(rate.Limit(set.RequestsPerSecond), max(set.Burst, 1))
		h.limits[account] = l
	}
	h.mu.Unlock()
	if l.AllowN(h.now(), 1) {
		return true
	}
	h.throttled.Add(1)
	return false
}

// New returns the API's HTTP handler over a ctld.
func New(b Backend, log *slog.Logger) *Handler {
	return &Handler{b: b, log: log, now: time.Now, limits: map[string]*rate.Limiter{}}
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := requestID()
	// Every answer names its request in a header too, where the SDKs
	// read it for an error (aws-sdk-go-v2's "RequestID: " was empty).
	w.Header().Set("x-amzn-RequestId", id)
	service := "ec2"
	if a, err := parseAuthorization(r.Header.Get("Authorization")); err == nil {
		service = a.service
	}
	// One endpoint serves both APIs, as the CLI's --endpoint-url points
	// both at it: the signing scope says which a request is for.
	switch service {
	case "elasticloadbalancing":
		h.serveWrapped(w, r, id, service, "2015-12-01", elbNamespace, h.elbv2)
		return
	case "sns":
		h.serveWrapped(w, r, id, service, "2010-03-31", snsNamespace, h.sns)
		return
	case "monitoring":
		if isCloudWatchJSON(r) {
			h.serveCloudWatchJSON(w, r, id) // current CLIs (cwjson.go)
			return
		}
		if isCloudWatchCBOR(r) {
			h.serveCloudWatchCBOR(w, r, id) // aws-sdk-go-v2 (cwcbor.go)
			return
		}
		h.serveWrapped(w, r, id, service, "2010-08-01", cwNamespace, h.cloudwatch)
		return
	case "sts":
		h.serveWrapped(w, r, id, service, "2011-06-15", stsNamespace, h.sts)
		return
	case "logs":
		if isLogs(r) {
			h.serveLogs(w, r, id) // flow logs' log groups (logs.go)
			return
		}
		notServed(w, r, id, service)
		return
	case "ec2":
	default:
		// Another AWS service's call: say so, rather than check its
		// signature as EC2's and refuse its scope.
		notServed(w, r, id, service)
		return
	}
	creds, body, region, err := verify(r, "ec2", h.now(), h.lookup)
	if err != nil {
		h.ec2Error(w, id, ec2AuthError(err))
		return
	}
	if !h.allow(creds.Account) {
		h.ec2Error(w, id, &apiError{503, "RequestLimitExceeded", "Request limit exceeded."})
		return
	}
	q, err := parseForm(body)
	if err != nil {
		h.ec2Error(w, id, &apiError{400, "MalformedQueryString", err.Error()})
		return
	}
	if v := q.str("Version"); v != "2016-11-15" {
		h.ec2Error(w, id, &apiError{400, "InvalidParameterValue", "Version " + v + " is not served; use 2016-11-15"})
		return
	}
	m := h.b.Model()
	if !m.HasRegion(region) {
		h.ec2Error(w, id, &apiError{401, "AuthFailure", "Region " + region + " is not one of the fabric's (" + strings.Join(m.RegionNames(), ", ") + "): sign with one of them"})
		return
	}
	out, err := h.ec2(creds.Account, region, q)
	if err != nil {
		h.log.Info("api refused", "action", q.str("Action"), "account", creds.Account, "err", err)
		h.ec2Error(w, id, err)
		return
	}
	body, err = members(out)
	if err != nil {
		h.ec2Error(w, id, &apiError{500, "InternalError", "encoding the answer: " + err.Error()})
		return
	}
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.Write([]byte(xml.Header))
	xml.NewEncoder(w).Encode(ec2Response{XMLName: xml.Name{Local: q.str("Action") + "Response"}, Namespace: ec2Namespace, RequestID: id, Members: body})
}

func (h *Handler) lookup(keyID string) (Credentials, bool) {
	a, ok := h.b.Model().AccountByKey(keyID)
	return Credentials{AccessKeyID: a.AccessKeyID, SecretAccessKey: a.SecretAccessKey, Account: a.ID}, ok
}

func parseForm(body []byte) (query, error) {
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, errors.New("the body is not a form-encoded query: " + err.Error())
	}
	return query(form), nil
}

// ec2AuthError is a refused signature as EC2 answers it.
func ec2AuthError(err error) error {
	var ae *authError
	if !errors.As(err, &ae) {
		return &apiError{400, "IncompleteSignature", err.Error()}
	}
	switch ae.code {
	case authMissing:
		return &apiError{401, "MissingAuthenticationToken", ae.msg}
	case authExpired:
		return &apiError{400, "RequestExpired", ae.msg}
	case authBadKey:
		return &apiError{401, "AuthFailure", "AWS was not able to validate the provided access credentials"}
	case authBadSig:
		return &apiError{401, "AuthFailure", ae.msg}
	}
	return &apiError{400, "IncompleteSignature", ae.msg}
}

type ec2ErrorBody struct {
	XMLName   xml.Name `xml:"Response"`
	Code      string   `xml:"Errors>Error>Code"`
	Message   string   `xml:"Errors>Error>Message"`
	RequestID string   `xml:"RequestID"`
}

func (h *Handler) ec2Error(w http.ResponseWriter, id string, err error) {
	code, status := ec2Code(err)
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(status)
	w.Write([]byte(xml.Header))
	xml.NewEncoder(w).Encode(ec2ErrorBody{Code: code, Message: err.Error(), RequestID: id})
}

// notServed answers a call for an AWS service pvlink does not serve with
// InvalidAction, in the body the caller's protocol reads: the query
// protocols' XML for a form-encoded call (IAM, RDS), which the rest-xml
// services (S3, Route 53, CloudFront) read too, and JSON for the rest
// (CloudWatch Logs, DynamoDB and KMS post JSON, Lambda's rest-json calls
// may have no body): the code in __type and in x-amzn-ErrorType. A JSON
// client given XML reports only "An error occurred (400)".
func notServed(w http.ResponseWriter, r *http.Request, id, service string) {
	msg := fmt.Sprintf("pvlink does not serve %s: it serves ec2, elasticloadbalancing, monitoring (CloudWatch), logs (flow logs' log groups), sns and sts", service)
	ct := r.Header.Get("Content-Type")
	switch service {
	case "s3", "s3control", "route53", "cloudfront":
	default:
		if strings.HasPrefix(ct, "application/x-www-form-urlencoded") || strings.Contains(ct, "xml") {
			break
		}
		if !strings.HasPrefix(ct, "application/x-amz-json-") {
			ct = "application/json"
		}
		w.Header().Set("Content-Type", ct)
		w.Header().Set("x-amzn-ErrorType", "InvalidAction")
		w.WriteHeader(http.StatusBadRequest)
		json.NewEncoder(w).Encode(map[string]string{"__type": "InvalidAction", "message": msg})
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(http.StatusBadRequest)
	xml.NewEncoder(w).Encode(queryErrorBody{Type: "Sender", Code: "InvalidAction", RequestID: id, Message: msg})
}
