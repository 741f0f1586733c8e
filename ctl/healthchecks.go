package ctl

import (
	"strings"

	"pvlink.dev/pvlink/snapshot"
)

// settleHealthCheck checks a health check's protocol, port, path and
// matcher, as ELBv2 takes them for an NLB's target group, and writes the
// defaults of what it leaves out: TCP on the traffic port; an HTTP or
// HTTPS check asks for / and passes on 200-399. A TCP check has no path
// or matcher.
func settleHealthCheck(hc *snapshot.HealthCheck) error {
	hc.Protocol = strings.ToUpper(hc.Protocol)
	switch hc.Protocol {
	case "", snapshot.CheckTCP:
		hc.Protocol = ""
		if hc.Path != "" || hc.Matcher != "" {
			return refuse("a TCP health check has no path or matcher (HealthCheckProtocol HTTP or HTTPS has)")
		}
		return nil
	case snapshot.CheckHTTP, snapshot.CheckHTTPS:
	default:
		return refuse("health check protocol %q: an NLB checks TCP, HTTP or HTTPS", hc.Protocol)
	}
	if hc.Path == "" {
		hc.Path = snapshot.DefaultPath
	}
	if !strings.HasPrefix(hc.Path, "/") || len(hc.Path) > 1024 || strings.ContainsAny(hc.Path, " \r\n") {
		return refuse("health check path %q: a path starting with /, up to 1024 characters", hc.Path)
	}
	if hc.Matcher == "" {
		hc.Matcher = snapshot.DefaultMatcher
	}
	if _, err := snapshot.ParseMatcher(hc.Matcher); err != nil {
		return refuse("%v", err)
	}
	return nil
}
