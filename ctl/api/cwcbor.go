package api

import (
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"time"

	"github.com/fxamacker/cbor/v2"
)

// CloudWatch in Smithy RPC v2 CBOR. aws-sdk-go-v2's CloudWatch client
// (v1.52 on) sends no Query and no JSON: it posts CBOR to
// /service/GraniteServiceVersion20100801/operation/<Action> with
// Smithy-Protocol: rpc-v2-cbor, and reads a CBOR answer in which a
// timestamp is tag 1 (epoch seconds) and a refusal is {__type, message},
// its Query code in x-amzn-query-error. The call is served by the same
// Query handlers as the JSON one (cwjson.go).

const cwCBORPath = "/service/GraniteServiceVersion20100801/operation/"

// isCloudWatchCBOR reports whether r is a CloudWatch call in RPC v2 CBOR.
func isCloudWatchCBOR(r *http.Request) bool {
	return r.Header.Get("Smithy-Protocol") == "rpc-v2-cbor" && strings.HasPrefix(r.URL.Path, cwCBORPath)
}

var (
	cborDecode = func() cbor.DecMode {
		m, err := cbor.DecOptions{
			DefaultMapType:  reflect.TypeOf(map[string]any(nil)),
			TimeTag:         cbor.DecTagOptional,
			MaxNestedLevels: 16,
		}.DecMode()
		if err != nil {
			panic(err)
		}
		return m
	}()
	cborEncode = func() cbor.EncMode {
		m, err := cbor.EncOptions{Time: cbor.TimeUnixDynamic, TimeTag: cbor.EncTagRequired}.EncMode()
		if err != nil {
			panic(err)
		}
		return m
	}()
)

var cwCBOR = cwCodec{
	contentType: "application/cbor",
	header:      http.Header{"Smithy-Protocol": {"rpc-v2-cbor"}},
	decode: func(body []byte) (map[string]any, error) {
		v := map[string]any{}
		if len(body) == 0 {
			return v, nil // an operation without input sends no body
		}
		if err := cborDecode.Unmarshal(body, &v); err != nil {
			return nil, fmt.Errorf("the body is not a CBOR map: %v", err)
		}
		return v, nil
	},
	encode: func(v any) ([]byte, error) { return cborEncode.Marshal(cborTimes("", v)) },
}

// serveCloudWatchCBOR answers a CloudWatch call made in RPC v2 CBOR.
func (h *Handler) serveCloudWatchCBOR(w http.ResponseWriter, r *http.Request, id string) {
	h.serveCloudWatchDoc(w, r, id, cwCBOR, strings.TrimPrefix(r.URL.Path, cwCBORPath))
}

// cborTimes readies a document for CBOR: the answers' timestamps
// (Timestamp, and each of Timestamps), ISO 8601 strings in the Query
// structures, become times, which go out as tag 1; members without a
// value are left out, as the protocol has absent members absent, not
// null.
func cborTimes(key string, v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			if e != nil {
				out[k] = cborTimes(k, e)
			}
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = cborTimes(key, e)
		}
		return out
	case string:
		if key == "Timestamp" || key == "Timestamps" {
			if t, err := time.Parse(time.RFC3339Nano, x); err == nil {
				return t
			}
		}
	}
	return v
}
