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

// serveCloudWatchJSON answers a CloudWatch call made in JSON.
func (h *Handler) serveCloudWatchJSON(w http.ResponseWriter, r *http.Request, id string) {
	fail := func(err error) {
		code, status := elbCode(err)
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		w.Header().Set("x-amzn-RequestId", id)
		// The Query code, for clients in query-compatible mode.
		w.Header().Set("x-amzn-query-error", code+";Sender")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]string{"__type": code, "message": err.Error()})
	}
	creds, body, ok := h.admit(r, "monitoring", fail)
	if !ok {
		return
	}
	q, err := queryOfJSON(body)
	if err != nil {
		fail(&apiError{400, "SerializationException", err.Error()})
		return
	}
	q["Action"] = []string{strings.TrimPrefix(r.Header.Get("X-Amz-Target"), cwJSONTarget)}
	q["Version"] = []string{"2010-08-01"}
	out, err := h.cloudwatch(creds.Account, q)
	if err != nil {
		h.log.Info("api refused", "service", "monitoring", "action", q.str("Action"), "account", creds.Account, "err", err)
		fail(err)
		return
	}
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(jsonOf(reflect.ValueOf(out))); err != nil {
		fail(&apiError{500, "InternalFailure", err.Error()})
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.Header().Set("x-amzn-RequestId", id)
	w.Write(buf.Bytes())
}

// queryOfJSON flattens a JSON call's members into the Query protocol's
// names.
func queryOfJSON(body []byte) (query, error) {
	q := query{}
	if len(bytes.TrimSpace(body)) == 0 {
		return q, nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v map[string]any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("the body is not a JSON object: %v", err)
	}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				walk(join(prefix, k), e)
			}
		case []any:
			for i, e := range x {
				walk(prefix+".member."+strconv.Itoa(i+1), e)
			}
		case json.Number:
			if f, err := x.Float64(); err == nil && strings.HasSuffix(prefix, "Time") {
				// A timestamp: epoch seconds in JSON, ISO 8601 in a query.
				sec, frac := math.Modf(f)
				q[prefix] = []string{time.Unix(int64(sec), int64(frac*1e9)).UTC().Format(time.RFC3339Nano)}
				return
			}
			q[prefix] = []string{x.String()}
		case string:
			q[prefix] = []string{x}
		case bool:
			q[prefix] = []string{strconv.FormatBool(x)}
		}
	}
	walk("", v)
	return q, nil
}

func join(prefix, k string) string {
	if prefix == "" {
		return k
	}
	return prefix + "." + k
}

// jsonOf is an answer structure as JSON, by its fields' XML names: a
// list named A>member is a JSON list A, a field named A>B an object A
// holding B.
func jsonOf(v reflect.Value) any {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return jsonOf(v.Elem())
	case reflect.Slice:
		out := make([]any, v.Len())
		for i := range v.Len() {
			out[i] = jsonOf(v.Index(i))
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
				out[name] = jsonOf(fv)
			case inner == "member":
				out[outer] = jsonOf(fv)
			default:
				o, _ := out[outer].(map[string]any)
				if o == nil {
					o = map[string]any{}
					out[outer] = o
				}
				o[inner] = jsonOf(fv)
			}
		}
		return out
	}
	return v.Interface()
}
