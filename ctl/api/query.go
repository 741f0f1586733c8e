// Package api is pvlink's AWS-compatible front-end: the EC2 Query API's
// PrivateLink actions as the AWS CLI and boto3 speak them (form-encoded
// POST, XML answers), every request checked with Signature Version 4
// against the fabric's accounts' keys. It is a client of ctld's model: it
// reads the committed model and makes changes through the model's
// operations, each on behalf of the calling account. It never touches the
// host.
package api

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"pvlink.dev/pvlink/ctl"
)

// query is a Query API request's parameters.
type query url.Values

// str is a scalar parameter.
func (q query) str(name string) string { return url.Values(q).Get(name) }

// list is a flattened list parameter: Name.1, Name.2, ...
func (q query) list(name string) []string {
	var out []string
	for i := 1; ; i++ {
		v, ok := q[name+"."+strconv.Itoa(i)]
		if !ok {
			return out
		}
		out = append(out, v[0])
	}
}

// filters are Filter.N.Name / Filter.N.Value.M, by name.
func (q query) filters() map[string][]string {
	out := map[string][]string{}
	for i := 1; ; i++ {
		name := q.str("Filter." + strconv.Itoa(i) + ".Name")
		if name == "" {
			return out
		}
		out[name] = append(out[name], q.list("Filter."+strconv.Itoa(i)+".Value")...)
	}
}

// structs reads a list of structures: Prefix.N.Field.
func (q query) structs(prefix string, fields ...string) []map[string]string {
	var out []map[string]string
	for i := 1; ; i++ {
		m := map[string]string{}
		for _, f := range fields {
			if v := q.str(prefix + "." + strconv.Itoa(i) + "." + f); v != "" {
				m[f] = v
			}
		}
		if len(m) == 0 {
			return out
		}
		out = append(out, m)
	}
}

// tags reads Prefix.N.Key / Prefix.N.Value.
func (q query) tags(prefix string) []ctl.Tag {
	var out []ctl.Tag
	for _, t := range q.structs(prefix, "Key", "Value") {
		out = append(out, ctl.Tag{Key: t["Key"], Value: t["Value"]})
	}
	return out
}

// permissions reads an ingress call's permissions: IpPermissions.N (with
// IpRanges.M.CidrIp, Ipv6Ranges.M.CidrIpv6 and Groups.M.GroupId), or the
// older single form (IpProtocol, FromPort, ToPort, CidrIp).
func (q query) permissions() []ctl.Permission {
	var out []ctl.Permission
	for i := 1; ; i++ {
		prefix := "IpPermissions." + strconv.Itoa(i) + "."
		proto := q.str(prefix + "IpProtocol")
		if proto == "" {
			break
		}
		p := ctl.Permission{Protocol: proto}
		p.From, _ = strconv.Atoi(q.str(prefix + "FromPort"))
		p.To, _ = strconv.Atoi(q.str(prefix + "ToPort"))
		for _, r := range q.structs(prefix+"IpRanges", "CidrIp", "Description") {
			p.CIDRs = append(p.CIDRs, r["CidrIp"])
			p.Describe(sourceKey(r["CidrIp"]), r["Description"])
		}
		for _, r := range q.structs(prefix+"Ipv6Ranges", "CidrIpv6", "Description") {
			p.CIDRs = append(p.CIDRs, r["CidrIpv6"])
			p.Describe(sourceKey(r["CidrIpv6"]), r["Description"])
		}
		// UserIdGroupPairs; a pair that names a group by name only
		// (GroupName, for EC2-Classic and default VPCs) is left for the
		// caller to refuse.
		for _, r := range q.structs(prefix+"Groups", "GroupId", "GroupName", "Description") {
			p.Groups = append(p.Groups, r["GroupId"])
			p.Describe(r["GroupId"], r["Description"])
		}
		for _, r := range q.structs(prefix+"PrefixListIds", "PrefixListId", "Description") {
			p.PrefixLists = append(p.PrefixLists, r["PrefixListId"])
			p.Describe(r["PrefixListId"], r["Description"])
		}
		out = append(out, p)
	}
	if proto := q.str("IpProtocol"); proto != "" {
		p := ctl.Permission{Protocol: proto, CIDRs: []string{q.str("CidrIp")}}
		p.From, _ = strconv.Atoi(q.str("FromPort"))
		p.To, _ = strconv.Atoi(q.str("ToPort"))
		out = append(out, p)
	}
	return out
}

// sourceKey is a range as a Permission's Descriptions are keyed: its masked
// prefix (as the range given, if it is none).
func sourceKey(cidr string) string {
	if p, err := netip.ParsePrefix(cidr); err == nil {
		return p.Masked().String()
	}
	return cidr
}

// match reports whether a resource passes the filters: for every filter
// the resource knows, one of its values is the resource's. A tag filter
// (tag:KEY, tag-key) the resource has no tag for does not pass.
func match(filters map[string][]string, fields map[string][]string) bool {
	for name, want := range filters {
		have, known := fields[name]
		if !known {
			if isTagFilter(name) {
				return false
			}
			continue
		}
		ok := false
		for _, w := range want {
			for _, h := range have {
				if w == h || strings.HasSuffix(w, "*") && strings.HasPrefix(h, strings.TrimSuffix(w, "*")) {
					ok = true
				}
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// tagFilters stands, in an action's known filters, for the ones every
// tagged resource takes: tag:KEY (the values of the tag KEY) and tag-key.
const tagFilters = "tag:KEY"

func isTagFilter(name string) bool { return strings.HasPrefix(name, "tag:") || name == "tag-key" }

// withTags adds a resource's tags to its filter fields (tag:KEY, tag-key).
func withTags(fields map[string][]string, tags []ctl.Tag) map[string][]string {
	for _, t := range tags {
		fields["tag:"+t.Key] = append(fields["tag:"+t.Key], t.Value)
		fields["tag-key"] = append(fields["tag-key"], t.Key)
	}
	return fields
}

// unknownFilters names the filters an action does not know, for a clear
// refusal.
func unknownFilters(filters map[string][]string, known ...string) error {
	for name := range filters {
		found := false
		for _, k := range known {
			found = found || k == name || k == tagFilters && isTagFilter(name)
		}
		if !found {
			return &apiError{status: 400, code: "InvalidParameterValue", msg: fmt.Sprintf("The filter '%s' is invalid (known: %s)", name, strings.Join(known, ", "))}
		}
	}
	return nil
}

func requestID() string {
	var b [16]byte
	rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// apiError is an answer with an AWS error code.
type apiError struct {
	status int
	code   string
	msg    string
}

func (e *apiError) Error() string { return e.msg }

// page cuts a describe call's answer by MaxResults and NextToken (an
// opaque offset into the answer, which is in a stable order): the page and
// the token for the next, "" at the end.
func page[T any](q query, items []T) ([]T, string, error) {
	return pageWithin(q, items, 5, 1000)
}

// pageWithin is page for an action whose MaxResults the model bounds
// otherwise: lo to hi.
func pageWithin[T any](q query, items []T, lo, hi int) ([]T, string, error) {
	start := 0
	if tok := q.str("NextToken"); tok != "" {
		b, err := base64.RawURLEncoding.DecodeString(tok)
		n, err2 := strconv.Atoi(string(b))
		if err != nil || err2 != nil || n < 0 || n > len(items) {
			return nil, "", &apiError{400, "InvalidNextToken", "The token '" + tok + "' is invalid"}
		}
		start = n
	}
	size := len(items) - start
	if v := q.str("MaxResults"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < lo || n > hi {
			return nil, "", &apiError{400, "InvalidParameterValue", fmt.Sprintf("MaxResults %s: use %d to %d", v, lo, hi)}
		}
		size = min(size, n)
	}
	end := start + size
	next := ""
	if end < len(items) {
		next = base64.RawURLEncoding.EncodeToString([]byte(strconv.Itoa(end)))
	}
	return items[start:end], next, nil
}
