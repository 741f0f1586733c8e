package api

import (
	"strconv"
	"strings"
)

// parseFilterPattern reads a CloudWatch Logs filter pattern of the two
// kinds flow logs are searched with: terms (all must appear; "quoted
// phrases", -term excludes, ?term alternatives), and space-delimited
// fields in brackets, each a name with an optional condition (=, !=, <,
// <=, >, >= a number or a string, * a wildcard in a string), as the VPC
// guide's [version, account, eni, source, destination, srcport,
// destport="22", protocol="6", packets, bytes, windowstart, windowend,
// action="REJECT", flowlogstatus].
func parseFilterPattern(p string) (func(string) bool, error) {
	p = strings.TrimSpace(p)
	switch {
	case p == "":
		return func(string) bool { return true }, nil
	case strings.HasPrefix(p, "["):
		if !strings.HasSuffix(p, "]") {
			return nil, logsInvalid("Invalid filter pattern: " + p + " (a space-delimited pattern ends with ])")
		}
		return parseFieldsPattern(p[1 : len(p)-1])
	case strings.HasPrefix(p, "{"):
		return nil, logsInvalid("pvlink reads filter patterns of terms and of space-delimited fields, not JSON ones: flow log records are not JSON")
	}
	terms, err := splitTerms(p)
	if err != nil {
		return nil, err
	}
	return func(msg string) bool {
		anyOf, hasAny := false, false
		for _, t := range terms {
			switch {
			case strings.HasPrefix(t, "?") && len(t) > 1:
				hasAny = true
				anyOf = anyOf || strings.Contains(msg, t[1:])
			case strings.HasPrefix(t, "-") && len(t) > 1:
				if strings.Contains(msg, t[1:]) {
					return false
				}
			default:
				if !strings.Contains(msg, t) {
					return false
				}
			}
		}
		return !hasAny || anyOf
	}, nil
}

// splitTerms splits a pattern at spaces, keeping "quoted phrases" whole
// (the quotes removed, after any - or ? before them).
func splitTerms(p string) ([]string, error) {
	var out []string
	for p = strings.TrimSpace(p); p != ""; p = strings.TrimSpace(p) {
		prefix := ""
		if p[0] == '-' || p[0] == '?' {
			prefix, p = p[:1], p[1:]
		}
		if strings.HasPrefix(p, `"`) {
			end := strings.Index(p[1:], `"`)
			if end < 0 {
				return nil, logsInvalid("Invalid filter pattern: an unclosed quote")
			}
			out = append(out, prefix+p[1:1+end])
			p = p[2+end:]
			continue
		}
		term, rest, _ := strings.Cut(p, " ")
		out = append(out, prefix+term)
		p = rest
	}
	return out, nil
}

var filterOps = []string{"!=", ">=", "<=", "=", ">", "<"} // longest first

func parseFieldsPattern(spec string) (func(string) bool, error) {
	type cond struct {
		op, value string
		num       float64
		isNum     bool
	}
	var conds []cond
	for _, f := range strings.Split(spec, ",") {
		f = strings.TrimSpace(f)
		if f == "" || f == "..." {
			return nil, logsInvalid("Invalid filter pattern: pvlink reads space-delimited patterns of named fields (no ... or empty fields)")
		}
		c := cond{}
		for _, op := range filterOps {
			if name, value, ok := strings.Cut(f, op); ok {
				if strings.TrimSpace(name) == "" {
					return nil, logsInvalid("Invalid filter pattern: a condition without its field's name: " + f)
				}
				c.op, c.value = op, strings.Trim(strings.TrimSpace(value), `"`)
				break
			}
		}
		if n, err := strconv.ParseFloat(c.value, 64); err == nil {
			c.num, c.isNum = n, true
		} else if c.op != "" && c.op != "=" && c.op != "!=" {
			return nil, logsInvalid("Invalid filter pattern: " + c.op + " compares numbers: " + f)
		}
		conds = append(conds, c)
	}
	return func(msg string) bool {
		fields := strings.Fields(msg)
		if len(fields) != len(conds) {
			return false
		}
		for i, c := range conds {
			v := fields[i]
			if c.op == "" {
				continue
			}
			if c.isNum {
				n, err := strconv.ParseFloat(v, 64)
				if err != nil {
					return c.op == "!="
				}
				ok := map[string]bool{"=": n == c.num, "!=": n != c.num, ">": n > c.num, ">=": n >= c.num, "<": n < c.num, "<=": n <= c.num}[c.op]
				if !ok {
					return false
				}
				continue
			}
			if eq := wildcard(c.value, v); eq != (c.op == "=") {
				return false
			}
		}
		return true
	}, nil
}

// wildcard matches v against a pattern in which * stands for any run of
// characters.
func wildcard(pattern, v string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == v
	}
	if !strings.HasPrefix(v, parts[0]) {
		return false
	}
	v = v[len(parts[0]):]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(v, p)
		if i < 0 {
			return false
		}
		v = v[i+len(p):]
	}
	return strings.HasSuffix(v, parts[len(parts)-1])
}
