// Package buildinfo says which code a pvlink binary was built from, as
// `go build` stamped it (make build asks for the VCS stamp).
package buildinfo

import (
	"fmt"
	"runtime/debug"
)

// Revision is the VCS revision the binary was built from, with
// "+modified" when the tree had uncommitted changes, or "unknown".
func Revision() string {
	rev, _ := read()
	return rev
}

// String is what `pvlink version` prints: the module version, the
// revision and its time, the Go version and the gVisor.
func String() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "pvlink (no build information)"
	}
	rev, when := read()
	if when != "" {
		when = " " + when
	}
	return fmt.Sprintf("pvlink %s (revision %s%s, %s, gVisor %s)", info.Main.Version, rev, when, info.GoVersion, GVisor())
}

// GVisor is the gVisor module the binary was built with, and whether with
// pvlink's changes to it (third_party/gvisor: make builds it through a
// replace of the module; a plain go build builds it without them).
func GVisor() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	for _, d := range info.Deps {
		if d.Path != "gvisor.dev/gvisor" {
			continue
		}
		if d.Replace != nil {
			return d.Version + " with pvlink's changes (third_party/gvisor)"
		}
		return d.Version + " as released (without third_party/gvisor's changes: build with make)"
	}
	return "unknown"
}

// read is the stamped revision ("+modified" for a tree with uncommitted
// changes; "unknown" without a stamp) and its commit time.
func read() (rev, when string) {
	rev = "unknown"
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return rev, ""
	}
	modified := false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		case "vcs.time":
			when = s.Value
		}
	}
	if modified {
		rev += "+modified"
	}
	return rev, when
}
