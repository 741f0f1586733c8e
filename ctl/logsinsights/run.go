package logsinsights

import (
	"math"
	"slices"
	"strings"
	"unicode"
)

// Event is one log event: its fields by name, the system ones
// (@timestamp as FormatTimestamp writes it, @message, @logStream, @log,
// @ingestionTime) and those discovered in it, and its pointer (@ptr).
type Event struct {
	Fields map[string]string
	Ptr    string
}

// Field is one field of a result row.
type Field struct {
	Field string `json:"field"`
	Value string `json:"value"`
}

// Result is what a query found.
type Result struct {
	Rows [][]Field
	// Matched counts the events that passed the query's filters (those
	// before its first stats, limit or dedup).
	Matched int
}

// defaultFields are a row's fields when the query names none.
var defaultFields = []string{"@timestamp", "@message", "@logStream", "@log"}

type item struct {
	r   row
	ptr string // "": an aggregate's row
}

// Run runs the query over events, given oldest first, and returns at most
// limit rows: events newest first unless the query sorts them.
func (q *Query) Run(events []Event, limit int) Result {
	items := make([]item, 0, len(events))
	for i := len(events) - 1; i >= 0; i-- {
		r := make(row, len(events[i].Fields))
		for k, v := range events[i].Fields {
			r[k] = str(v)
		}
		items = append(items, item{r: r, ptr: events[i].Ptr})
	}
	var (
		named, display []string
		aggregated     bool
		matched        = -1
	)
	addNamed := func(n string) {
		if !slices.Contains(named, n) {
			named = append(named, n)
		}
	}
	for _, c := range q.cmds {
		switch c := c.(type) {
		case fieldsCmd:
			for _, it := range items {
				for _, n := range c.items {
					if v := n.e.eval(it.r); !v.null() {
						it.r[n.name] = v
					}
				}
			}
			for _, n := range c.items {
				addNamed(n.name)
			}
		case parseCmd:
			// An event the pattern does not match stays, without the
			// fields; so does a field whose group took no part in the
			// match (one side of an alternation, which may name the
			// same field as the other).
			for _, it := range items {
				v, ok := it.r[c.field]
				if !ok || v.null() {
					continue
				}
				text := v.text()
				m := c.re.FindStringSubmatchIndex(text)
				for i, n := range c.names {
					if m != nil && m[2*i+2] >= 0 {
						it.r[n] = str(text[m[2*i+2]:m[2*i+3]])
					}
				}
			}
			for _, n := range c.names {
				addNamed(n)
			}
		case displayCmd:
			display = c.names
		case filterCmd:
			items = slices.DeleteFunc(items, func(it item) bool { return !c.cond.eval(it.r).isTrue() })
		case statsCmd:
			if matched < 0 {
				matched = len(items)
			}
			items = c.run(items)
			aggregated, named = true, nil
			for _, b := range c.by {
				addNamed(b.name)
			}
			for _, a := range c.aggs {
				addNamed(a.name)
			}
		case sortCmd:
			slices.SortStableFunc(items, func(a, b item) int {
				for _, k := range c.keys {
					x := naturalCompare(a.r[k.name], b.r[k.name])
					if k.desc {
						x = -x
					}
					if x != 0 {
						return x
					}
				}
				return 0
			})
		case limitCmd:
			if matched < 0 {
				matched = len(items)
			}
			items = items[:min(len(items), c.n)]
		case dedupCmd:
			if matched < 0 {
				matched = len(items)
			}
			seen := map[string]bool{}
			items = slices.DeleteFunc(items, func(it item) bool {
				var k strings.Builder
				for _, n := range c.names {
					k.WriteString(it.r[n].text())
					k.WriteByte(0)
				}
				dup := seen[k.String()]
				seen[k.String()] = true
				return dup
			})
		}
	}
	if matched < 0 {
		matched = len(items)
	}
	cols := display
	if cols == nil {
		cols = named
	}
	if cols == nil && !aggregated {
		cols = defaultFields
	}
	out := Result{Matched: matched}
	for _, it := range items[:min(len(items), limit)] {
		var fs []Field
		for _, c := range cols {
			if v, ok := it.r[c]; ok && !v.null() {
				fs = append(fs, Field{c, v.text()})
			}
		}
		if it.ptr != "" {
			fs = append(fs, Field{"@ptr", it.ptr})
		}
		out.Rows = append(out.Rows, fs)
	}
	return out
}

// run groups the items by the by-expressions and gives a row per group,
// groups in the order they were first met.
func (s statsCmd) run(items []item) []item {
	type group struct {
		r      row
		counts []float64
		sums   []float64
		mins   []float64
		maxs   []float64
		seen   []map[string]bool
	}
	groups := map[string]*group{}
	var order []string
	for _, it := range items {
		var key strings.Builder
		keys := make([]value, len(s.by))
		for i, b := range s.by {
			keys[i] = b.e.eval(it.r)
			key.WriteString(keys[i].text())
			key.WriteByte(0)
		}
		g := groups[key.String()]
		if g == nil {
			g = &group{r: row{}, counts: make([]float64, len(s.aggs)), sums: make([]float64, len(s.aggs)),
				mins: make([]float64, len(s.aggs)), maxs: make([]float64, len(s.aggs)), seen: make([]map[string]bool, len(s.aggs))}
			for i, b := range s.by {
				if !keys[i].null() {
					g.r[b.name] = keys[i]
				}
			}
			for i := range s.aggs {
				g.mins[i], g.maxs[i] = math.Inf(1), math.Inf(-1)
				g.seen[i] = map[string]bool{}
			}
			groups[key.String()] = g
			order = append(order, key.String())
		}
		for i, a := range s.aggs {
			if a.arg == nil {
				g.counts[i]++
				continue
			}
			v := a.arg.eval(it.r)
			if v.null() {
				continue
			}
			switch a.fn {
			case "count":
				g.counts[i]++
			case "count_distinct":
				g.seen[i][v.text()] = true
			default:
				if n, ok := v.number(); ok {
					g.counts[i]++
					g.sums[i] += n
					g.mins[i] = math.Min(g.mins[i], n)
					g.maxs[i] = math.Max(g.maxs[i], n)
				}
			}
		}
	}
	out := make([]item, 0, len(order))
	for _, k := range order {
		g := groups[k]
		for i, a := range s.aggs {
			switch a.fn {
			case "count":
				g.r[a.name] = num(g.counts[i])
			case "count_distinct":
				g.r[a.name] = num(float64(len(g.seen[i])))
			case "sum":
				if g.counts[i] > 0 {
					g.r[a.name] = num(g.sums[i])
				}
			case "avg":
				if g.counts[i] > 0 {
					g.r[a.name] = num(g.sums[i] / g.counts[i])
				}
			case "min":
				if g.counts[i] > 0 {
					g.r[a.name] = num(g.mins[i])
				}
			case "max":
				if g.counts[i] > 0 {
					g.r[a.name] = num(g.maxs[i])
				}
			}
		}
		out = append(out, item{r: g.r})
	}
	return out
}

// naturalCompare orders values as Logs Insights' sort does, ascending:
// missing values first, then values that are not numbers, in natural
// order (runs of digits by their length, then their value; the rest by
// Unicode), then numbers by value.
func naturalCompare(a, b value) int {
	switch {
	case a.null() && b.null():
		return 0
	case a.null():
		return -1
	case b.null():
		return 1
	}
	an, aok := a.number()
	bn, bok := b.number()
	switch {
	case aok && bok:
		switch {
		case an < bn:
			return -1
		case an > bn:
			return 1
		}
		return 0
	case aok:
		return 1
	case bok:
		return -1
	}
	return naturalText([]rune(a.text()), []rune(b.text()))
}

func naturalText(a, b []rune) int {
	for len(a) > 0 && len(b) > 0 {
		if unicode.IsDigit(a[0]) && unicode.IsDigit(b[0]) {
			i, j := digits(a), digits(b)
			if i != j {
				return i - j
			}
			if c := strings.Compare(string(a[:i]), string(b[:j])); c != 0 {
				return c
			}
			a, b = a[i:], b[j:]
			continue
		}
		if a[0] != b[0] {
			if a[0] < b[0] {
				return -1
			}
			return 1
		}
		a, b = a[1:], b[1:]
	}
	return len(a) - len(b)
}

func digits(r []rune) int {
	i := 0
	for i < len(r) && unicode.IsDigit(r[i]) {
		i++
	}
	return i
}
