package bench

import (
	"encoding/json"
	"fmt"
	"html"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Get returns a path's result for a metric.
func (r *Report) Get(path, metric string) (Result, bool) {
	for _, x := range r.Results {
		if x.Path == path && x.Metric == metric {
			return x, true
		}
	}
	return Result{}, false
}

func (r *Report) paths() []string {
	var out []string
	for _, p := range AllPaths {
		for _, x := range r.Results {
			if x.Path == p {
				out = append(out, p)
				break
			}
		}
	}
	return out
}

// WriteFiles writes bench.md, bench.json and bench.svg into dir.
func (r *Report) WriteFiles(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "bench.json"), append(data, '\n'), 0o644); err != nil {
		return err
	}
	var md strings.Builder
	r.WriteMarkdown(&md)
	if err := os.WriteFile(filepath.Join(dir, "bench.md"), []byte(md.String()), 0o644); err != nil {
		return err
	}
	var svg strings.Builder
	r.WriteSVG(&svg)
	return os.WriteFile(filepath.Join(dir, "bench.svg"), []byte(svg.String()), 0o644)
}

func fmtVal(v float64) string {
	switch {
	case v >= 1000:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

// WriteMarkdown writes the table: median (min-max) per path, and pvlink's
// ratio to each other path.
func (r *Report) WriteMarkdown(w io.Writer) {
	paths := r.paths()
	fmt.Fprintf(w, "%s, %s; median of %d runs (min-max), %s per measurement", r.Date.Format("2006-01-02"), r.Machine, r.Options.Runs, r.Options.Duration)
	if r.GODEBUG != "" {
		fmt.Fprintf(w, "; load generator GODEBUG=%s", r.GODEBUG)
	}
	fmt.Fprint(w, ".\n\n")
	if r.Command != "" {
		fmt.Fprintf(w, "`%s`\n\n", r.Command)
	}
	if r.Build != "" {
		fmt.Fprintf(w, "Measured: %s.\n\n", r.Build)
	}
	fmt.Fprint(w, "| metric |")
	for _, p := range paths {
		fmt.Fprintf(w, " %s |", p)
	}
	for _, p := range paths[1:] {
		fmt.Fprintf(w, " pvlink / %s |", p)
	}
	fmt.Fprint(w, "\n|---|")
	for range paths {
		fmt.Fprint(w, "---|")
	}
	for range paths[1:] {
		fmt.Fprint(w, "---|")
	}
	fmt.Fprintln(w)
	for _, m := range metricOrder {
		line := fmt.Sprintf("| %s (%s) |", m.title, m.unit)
		any := false
		for _, p := range paths {
			if x, ok := r.Get(p, m.name); ok {
				line += fmt.Sprintf(" %s (%s–%s) |", fmtVal(x.Median), fmtVal(x.Min), fmtVal(x.Max))
				any = true
			} else {
				line += " – |"
			}
		}
		if !any {
			continue
		}
		pv, havePV := r.Get("pvlink", m.name)
		for _, p := range paths[1:] {
			if x, ok := r.Get(p, m.name); ok && havePV && x.Median > 0 && !noRatio[m.name] {
				line += fmt.Sprintf(" %.2fx |", pv.Median/x.Median)
			} else {
				line += " – |"
			}
		}
		fmt.Fprintln(w, line)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "\n%s\n", n)
	}
}

// noRatio are the metrics that say how the machine was, not how a path
// did: no ratio between paths.
var noRatio = map[string]bool{"steal_pct": true}

var pathColors = map[string]string{"pvlink": "#d9480f", "kernel-routed": "#868e96", "kernel-dnat": "#1c7ed6", "haproxy": "#37b24d"}

// WriteSVG draws one group of horizontal bars per metric, each scaled to
// the largest value of its metric, with the values written on them.
func (r *Report) WriteSVG(w io.Writer) {
	paths := r.paths()
	const (
		width  = 900
		left   = 230
		barW   = 560
		barH   = 16
		gap    = 4
		header = 70
	)
	var groups []string
	for _, m := range metricOrder {
		for _, p := range paths {
			if _, ok := r.Get(p, m.name); ok {
				groups = append(groups, m.name)
				break
			}
		}
	}
	groupH := len(paths)*(barH+gap) + 24
	height := header + len(groups)*groupH + 20
	fmt.Fprintf(w, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(w, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(w, `<text x="10" y="22" font-size="16" font-weight="bold">pvlink bench: %s</text>`+"\n", html.EscapeString(r.Date.Format("2006-01-02")+", "+r.Machine))
	x := 10
	for _, p := range paths {
		fmt.Fprintf(w, `<rect x="%d" y="36" width="12" height="12" fill="%s"/><text x="%d" y="47">%s</text>`+"\n", x, pathColors[p], x+16, p)
		x += 140
	}
	fmt.Fprintf(w, `<text x="%d" y="62" fill="#555">median of %d runs; thin line: min–max; bars scaled per metric</text>`+"\n", 10, r.Options.Runs)
	y := header
	for _, name := range groups {
		var title, unit string
		for _, m := range metricOrder {
			if m.name == name {
				title, unit = m.title, m.unit
			}
		}
		max := 0.0
		for _, p := range paths {
			if x, ok := r.Get(p, name); ok && x.Max > max {
				max = x.Max
			}
		}
		fmt.Fprintf(w, `<text x="10" y="%d" font-weight="bold">%s (%s)</text>`+"\n", y+14, html.EscapeString(title), html.EscapeString(unit))
		by := y + 20
		for _, p := range paths {
			res, ok := r.Get(p, name)
			if ok && max > 0 {
				bw := float64(barW) * res.Median / max
				fmt.Fprintf(w, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", left-8, by+12, p)
				fmt.Fprintf(w, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", left, by, bw, barH, pathColors[p])
				x0, x1 := float64(left)+float64(barW)*res.Min/max, float64(left)+float64(barW)*res.Max/max
				fmt.Fprintf(w, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="black"/>`+"\n", x0, x1, by+barH/2, by+barH/2)
				fmt.Fprintf(w, `<text x="%.1f" y="%d">%s</text>`+"\n", float64(left)+bw+6, by+12, fmtVal(res.Median))
			}
			by += barH + gap
		}
		y += groupH
	}
	fmt.Fprintln(w, "</svg>")
}
