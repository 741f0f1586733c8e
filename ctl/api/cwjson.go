package api

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"math"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// CloudWatch in JSON. Current AWS CLIs and SDKs no longer send CloudWatch
// calls in the Query protocol: botocore 1.43 (aws-cli 1.45) posts JSON
// (application/x-amz-json-1.0, X-Amz-Target
// GraniteServiceVersion20100801.<Action>, x-amzn-query-mode) and reads a
// JSON answer. Both are served: a JSON call is flattened into the query
// the Query handlers read (lists as Name.member.N, structures as
// Name.Member, timestamps from epoch seconds), and the answer those
// handlers give is written as JSON from the same structures' XML names.

const cwJSONTarget = "GraniteServiceVersion20100801."

// isCloudWatchJSON reports whether r is a CloudWatch call in JSON.
func isCloudWatchJSON(r *http.Request) bool {
	return strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-amz-json-1.0") &&
		strings.HasPrefix(r.Header.Get("X-Amz-Target"), cwJSONTarget)
}

// cwCodec is how one of CloudWatch's document protocols (JSON, CBOR)
// reads a call's members and writes an answer or a refusal.
type cwCodec struct {
	contentType string
	header      http.Header // set on every answer
	decode      func(body []byte) (map[string]any, error)
	encode      func(v any) ([]byte, error)
}

var cwJSON = cwCodec{
	contentType: "application/x-amz-json-1.0",
	decode: func(body []byte) (map[string]any, error) {
		v := map[string]any{}
		if len(bytes.TrimSpace(body)) == 0 {
			return v, nil
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("the body is not a JSON object: %v", err)
		}
		return v, nil
	},
	encode: func(v any) ([]byte, error) { return json.Marshal(v) },
}

// serveCloudWatchJSON answers a CloudWatch call made in JSON.
func (h *Handler) serveCloudWatchJSON(w http.ResponseWriter, r *http.Request, id string) {
	h.serveCloudWatchDoc(w, r, id, cwJSON, strings.TrimPrefix(r.Header.Get("X-Amz-Target"), cwJSONTarget))
}

// serveCloudWatchDoc answers a CloudWatch action called in one of the
// document protocols: the call's members flattened into the query the
// Query handlers read, their answer written from the same structures.
func (h *Handler) serveCloudWatchDoc(w http.ResponseWriter, r *http.Request, id string, codec cwCodec, action string) {
	write := func(status int, v any) {
		for k, vs := range codec.header {
			w.Header()[k] = vs
		}
		w.Header().Set("Content-Type", codec.contentType)
		body, err := codec.encode(v)
		if err != nil {
			status, body = http.StatusInternalServerError, nil
			h.log.Error("api: encoding a CloudWatch answer", "err", err)
		}
		w.WriteHeader(status)
		w.Write(body)
	}
	fail := func(err error) {
		code, status := elbCode(err)
		// The Query code, for clients in query-compatible mode.
		w.Header().Set("x-amzn-query-error", code+";Sender")
		write(status, map[string]any{"__type": code, "message": err.Error()})
	}
	creds, body, ok := h.admit(r, "monitoring", fail)
	if !ok {
		return
	}
	members, err := codec.decode(body)
	if err != nil {
		fail(&apiError{400, "SerializationException", err.Error()})
		return
	}
	q := queryOfMembers(members)
	q["Action"] = []string{action}
	q["Version"] = []string{"2010-08-01"}
	out, err := h.cloudwatch(creds.Account, q)
	if err != nil {
		h.log.Info("api refused", "service", "monitoring", "action", action, "account", creds.Account, "err", err)
		fail(err)
		return
	}
	write(http.StatusOK, documentOf(reflect.ValueOf(out)))
}

// queryOfMembers flattens a call's members into the Query protocol's
// names. Timestamps come as epoch seconds (JSON) or as times (CBOR's tag
// 1), and go into the query in ISO 8601.
func queryOfMembers(members map[string]any) query {
	q := query{}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		isTime := strings.HasSuffix(prefix, "Time")
		seconds := func(f float64) {
			sec, frac := math.Modf(f)
			walk(prefix, time.Unix(int64(sec), int64(frac*1e9)))
		}
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				walk(join(prefix, k), e)
			}
		case []any:
			for i, e := range x {
				walk(prefix+".member."+strconv.Itoa(i+1), e)
			}
		case time.Time:
			q[prefix] = []string{x.UTC().Format(time.RFC3339Nano)}
		case json.Number:
			if f, err := x.Float64(); err == nil && isTime {
				seconds(f)
				return
			}
			q[prefix] = []string{x.String()}
		case float64:
			if isTime {
				seconds(x)
				return
			}
			q[prefix] = []string{strconv.FormatFloat(x, 'g', -1, 64)}
		case uint64:
			if isTime {
				seconds(float64(x))
				return
			}
			q[prefix] = []string{strconv.FormatUint(x, 10)}
		case int64:
			if isTime {
				seconds(float64(x))
				return
			}
			q[prefix] = []string{strconv.FormatInt(x, 10)}
		case string:
			q[prefix] = []string{x}
		case bool:
			q[prefix] = []string{strconv.FormatBool(x)}
		}
	}
	walk("", members)
	return q
}

func join(prefix, k string) string {
	if prefix == "" {
		return k
	}
	return prefix + "." + k
}

// documentOf is an answer structure as a document (JSON's or CBOR's), by
// its fields' XML names: a list named A>member is a list A, a field named
// A>B an object A holding B.
func documentOf(v reflect.Value) any {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return documentOf(v.Elem())
	case reflect.Slice:
		out := make([]any, v.Len())
		for i := range v.Len() {
			out[i] = documentOf(v.Index(i))
		}
		return out
	case reflect.Struct:
		out := map[string]any{}
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() || f.Type == reflect.TypeOf(xml.Name{}) {
				continue
			}
			name, opts, _ := strings.Cut(f.Tag.Get("xml"), ",")
			if name == "-" || strings.Contains(opts, "attr") {
				continue
			}
			if name == "" {
				name = f.Name
			}
			fv := v.Field(i)
			if strings.Contains(opts, "omitempty") && fv.IsZero() {
				continue
			}
			outer, inner, nested := strings.Cut(name, ">")
			switch {
			case !nested:
				out[name] = documentOf(fv)
			case inner == "member":
				out[outer] = documentOf(fv)
			default:
				o, _ := out[outer].(map[string]any)
				if o == nil {
					o = map[string]any{}
					out[outer] = o
				}
				o[inner] = documentOf(fv)
			}
		}
		return out
	}
	return v.Interface()
}
