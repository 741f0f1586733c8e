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
// revision and its time, and the Go version.
func String() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "pvlink (no build information)"
	}
	rev, when := read()
	if when != "" {
		when = " " + when
	}
	return fmt.Sprintf("pvlink %s (revision %s%s, %s)", info.Main.Version, rev, when, info.GoVersion)
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
