package api

import (
	"encoding/xml"
	"errors"
	"net/http"
)

// The Query protocol as ELBv2, SNS, CloudWatch and STS speak it: a signed
// form-encoded call, an <ActionResponse> around <ActionResult> and the
// request's metadata, an <ErrorResponse> for a refusal.

// queryResponse is an answer: the action's result and metadata.
type queryResponse struct {
	XMLName   xml.Name
	Namespace string `xml:"xmlns,attr"`
	Result    []byte `xml:",innerxml"`
}

// queryErrorBody is a refusal.
type queryErrorBody struct {
	XMLName   xml.Name `xml:"ErrorResponse"`
	Namespace string   `xml:"xmlns,attr"`
	Type      string   `xml:"Error>Type"`
	Code      string   `xml:"Error>Code"`
	Message   string   `xml:"Error>Message"`
	RequestID string   `xml:"RequestId"`
}

// queryAuthError is a refused signature as the Query protocol services
// answer it.
func queryAuthError(err error) error {
	var ae *authError
	if !errors.As(err, &ae) {
		return &apiError{400, "IncompleteSignature", err.Error()}
	}
	switch ae.code {
	case authMissing:
		return &apiError{403, "MissingAuthenticationToken", ae.msg}
	case authBadKey:
		return &apiError{403, "InvalidClientTokenId", ae.msg}
	case authBadSig, authExpired:
		return &apiError{403, "SignatureDoesNotMatch", ae.msg}
	}
	return &apiError{400, "IncompleteSignature", ae.msg}
}

// admit checks a call's signature for service and the caller's rate, as
// the query-style services (ELBv2, SNS, CloudWatch, STS) answer a refusal:
// through fail. It returns the caller and the body it read.
func (h *Handler) admit(r *http.Request, service string, fail func(error)) (Credentials, []byte, bool) {
	creds, body, _, err := verify(r, service, h.now(), h.lookup)
	if err != nil {
		fail(queryAuthError(err))
		return creds, nil, false
	}
	if !h.allow(creds.Account) {
		fail(&apiError{400, "Throttling", "Rate exceeded"})
		return creds, nil, false
	}
	return creds, body, true
}

// serveWrapped serves the Query protocol of ELBv2, SNS, CloudWatch and
// STS: the result inside <ActionResult>, metadata after it, ErrorResponse
// for errors.
func (h *Handler) serveWrapped(w http.ResponseWriter, r *http.Request, id, service, version, namespace string, run func(string, query) (any, error)) {
	fail := func(err error) {
		code, status := elbCode(err)
		typ := "Sender"
		if status >= 500 {
			typ = "Receiver"
		}
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(status)
		xml.NewEncoder(w).Encode(queryErrorBody{Namespace: namespace, Type: typ, Code: code, Message: err.Error(), RequestID: id})
	}
	creds, body, ok := h.admit(r, service, fail)
	if !ok {
		return
	}
	q, err := parseForm(body)
	if err != nil {
		fail(&apiError{400, "MalformedQueryString", err.Error()})
		return
	}
	if v := q.str("Version"); v != version {
		fail(&apiError{400, "InvalidParameterValue", "Version " + v + " is not served; use " + version})
		return
	}
	out, err := run(creds.Account, q)
	if err != nil {
		h.log.Info("api refused", "service", service, "action", q.str("Action"), "account", creds.Account, "err", err)
		fail(err)
		return
	}
	action := q.str("Action")
	result, err := members(out)
	if err != nil {
		fail(&apiError{500, "InternalFailure", err.Error()})
		return
	}
	inner := "<" + action + "Result>" + string(result) + "</" + action + "Result><ResponseMetadata><RequestId>" + id + "</RequestId></ResponseMetadata>"
	w.Header().Set("Content-Type", "text/xml")
	w.Write([]byte(xml.Header))
	xml.NewEncoder(w).Encode(queryResponse{XMLName: xml.Name{Local: action + "Response"}, Namespace: namespace, Result: []byte(inner)})
}
