package bench

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"pvlink.dev/pvlink/ctl"
)

// profileForwarders takes a CPU profile of each forwarder process for d
// (their /debug/pprof/profile) while the caller measures. The returned
// function waits for the profiles and writes them to dir as
// NAME-LABEL.pprof (LABEL the AZ, and the worker when there are several):
// `go tool pprof -top FILE` reads them.
func profileForwarders(fs []ctl.ForwarderReport, dir, name string, d time.Duration) (wait func() error) {
	secs := max(1, int(math.Ceil(d.Seconds())))
	errs := make(chan error, len(fs))
	for _, f := range fs {
		go func() {
			label := strings.ReplaceAll(f.Label(), "/", "-")
			errs <- profileOne(f, filepath.Join(dir, fmt.Sprintf("%s-%s.pprof", name, label)), secs)
		}()
	}
	return func() error {
		var all []error
		for range fs {
			all = append(all, <-errs)
		}
		return errors.Join(all...)
	}
}

func profileOne(f ctl.ForwarderReport, file string, secs int) error {
	client := http.Client{Timeout: time.Duration(secs)*time.Second + 10*time.Second}
	resp, err := client.Get(fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", f.MetricsBase(), secs))
	if err != nil {
		return fmt.Errorf("profile %s: %w", f.Label(), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profile %s: %s", f.Label(), resp.Status)
	}
	out, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, resp.Body); err != nil {
		out.Close()
		return fmt.Errorf("profile %s: %w", f.Label(), err)
	}
	return out.Close()
}
