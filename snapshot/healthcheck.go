package snapshot

import (
	"fmt"
	"strconv"
	"strings"
)

// Health check protocols and the defaults of an HTTP or HTTPS check.
const (
	CheckTCP       = "TCP"
	CheckHTTP      = "HTTP"
	CheckHTTPS     = "HTTPS"
	DefaultPath    = "/"
	DefaultMatcher = "200-399"
)

// CheckProtocol is the check's protocol, TCP when unset.
func (hc HealthCheck) CheckProtocol() string {
	if hc.Protocol == "" {
		return CheckTCP
	}
	return hc.Protocol
}

// ParseMatcher reads an NLB's HTTP code matcher: codes from 200 to 599,
// single ("200"), a range ("200-399") or a list ("200,202,301"). It
// returns the inclusive ranges it names.
func ParseMatcher(m string) ([][2]int, error) {
	var out [][2]int
	for _, part := range strings.Split(m, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		if !isRange {
			hi = lo
		}
		a, err1 := strconv.Atoi(strings.TrimSpace(lo))
		b, err2 := strconv.Atoi(strings.TrimSpace(hi))
		if err1 != nil || err2 != nil || a < 200 || b > 599 || a > b {
			return nil, fmt.Errorf("HTTP code matcher %q: use codes from 200 to 599, as 200, 200-399 or 200,202", m)
		}
		out = append(out, [2]int{a, b})
	}
	return out, nil
}

// MatcherAllows reports whether status passes matcher ("" is the
// default, 200-399); an unreadable matcher passes nothing.
func MatcherAllows(matcher string, status int) bool {
	if matcher == "" {
		matcher = DefaultMatcher
	}
	ranges, err := ParseMatcher(matcher)
	if err != nil {
		return false
	}
	for _, r := range ranges {
		if status >= r[0] && status <= r[1] {
			return true
		}
	}
	return false
}
