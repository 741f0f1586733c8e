package nsenter

import (
	"os"
	"testing"
)

// BenchmarkDoHandle is the cost of running a function in another
// namespace, as the forwarder does for every connection to a target.
func BenchmarkDoHandle(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	h, err := handle(scratch(b, "pvl-bench-nsenter"))
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	b.ReportAllocs()
	for b.Loop() {
		if err := DoHandle(h, func() error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
}
