package logsinsights

import (
	"math"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// value is what an expression gives: nothing (a field the event lacks), a
// number, a string or a truth.
type value struct {
	kind valueKind
	n    float64
	s    string
	b    bool
}

type valueKind int

const (
	kNull valueKind = iota
	kNum
	kStr
	kBool
)

func num(f float64) value  { return value{kind: kNum, n: f} }
func str(s string) value   { return value{kind: kStr, s: s} }
func truth(b bool) value   { return value{kind: kBool, b: b} }
func (v value) null() bool { return v.kind == kNull }

// number is v as a number: a string that reads as one is one, as a
// field's text always is in a log.
func (v value) number() (float64, bool) {
	switch v.kind {
	case kNum:
		return v.n, true
	case kStr:
		f, err := strconv.ParseFloat(strings.TrimSpace(v.s), 64)
		return f, err == nil
	}
	return 0, false
}

func (v value) text() string {
	switch v.kind {
	case kNum:
		return formatNumber(v.n)
	case kStr:
		return v.s
	case kBool:
		return strconv.FormatBool(v.b)
	}
	return ""
}

func formatNumber(f float64) string {
	if f == math.Trunc(f) && math.Abs(f) < 1e15 {
		return strconv.FormatInt(int64(f), 10)
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}

func (v value) isTrue() bool {
	switch v.kind {
	case kBool:
		return v.b
	case kNum:
		return v.n != 0
	case kStr:
		return v.s != ""
	}
	return false
}

// row is an event's fields as the query has them so far.
type row map[string]value

type expr interface{ eval(r row) value }

type (
	literal  struct{ v value }
	fieldRef string
	boolOp   struct {
		or   bool
		l, r expr
	}
	notOp   struct{ e expr }
	compare struct {
		op   string
		l, r expr
	}
	likeOp struct {
		l expr
		m *regexp.Regexp
	}
	inOp struct {
		l    expr
		list []expr
	}
	arith struct {
		op   string
		l, r expr
	}
	binOp struct{ d time.Duration }
	call  struct {
		name string
		f    function
		args []expr
	}
)

func (l literal) eval(row) value    { return l.v }
func (f fieldRef) eval(r row) value { return r[string(f)] }

func (b boolOp) eval(r row) value {
	l := b.l.eval(r).isTrue()
	if b.or {
		return truth(l || b.r.eval(r).isTrue())
	}
	return truth(l && b.r.eval(r).isTrue())
}

func (n notOp) eval(r row) value { return truth(!n.e.eval(r).isTrue()) }

// eval compares numbers as numbers when both sides read as numbers, else
// as text; a side that is missing makes the comparison false.
func (c compare) eval(r row) value {
	l, rv := c.l.eval(r), c.r.eval(r)
	if l.null() || rv.null() {
		return truth(false)
	}
	var cmp int
	ln, lok := l.number()
	rn, rok := rv.number()
	if lok && rok {
		switch {
		case ln < rn:
			cmp = -1
		case ln > rn:
			cmp = 1
		}
	} else {
		cmp = strings.Compare(l.text(), rv.text())
	}
	switch c.op {
	case "=", "==":
		return truth(cmp == 0)
	case "!=":
		return truth(cmp != 0)
	case "<":
		return truth(cmp < 0)
	case "<=":
		return truth(cmp <= 0)
	case ">":
		return truth(cmp > 0)
	}
	return truth(cmp >= 0)
}

func (l likeOp) eval(r row) value {
	v := l.l.eval(r)
	return truth(!v.null() && l.m.MatchString(v.text()))
}

func (in inOp) eval(r row) value {
	v := in.l.eval(r)
	if v.null() {
		return truth(false)
	}
	for _, e := range in.list {
		if (compare{op: "=", l: literal{v}, r: literal{e.eval(r)}}).eval(r).b {
			return truth(true)
		}
	}
	return truth(false)
}

func (a arith) eval(r row) value {
	l, lok := a.l.eval(r).number()
	rn, rok := a.r.eval(r).number()
	if !lok || !rok {
		return value{}
	}
	switch a.op {
	case "+":
		return num(l + rn)
	case "-":
		return num(l - rn)
	case "*":
		return num(l * rn)
	case "/":
		if rn == 0 {
			return value{}
		}
		return num(l / rn)
	}
	if rn == 0 {
		return value{}
	}
	return num(math.Mod(l, rn))
}

// eval floors the event's @timestamp to the period.
func (b binOp) eval(r row) value {
	t, ok := parseTimestamp(r["@timestamp"].text())
	if !ok {
		return value{}
	}
	ms := t.UnixMilli()
	p := b.d.Milliseconds()
	return str(FormatTimestamp(time.UnixMilli(ms - ms%p)))
}

func (c call) eval(r row) value {
	args := make([]value, len(c.args))
	for i, a := range c.args {
		args[i] = a.eval(r)
	}
	return c.f.fn(args)
}

type function struct {
	min, max int
	fn       func([]value) value
}

func (f function) arity() string {
	switch {
	case f.min == f.max && f.min == 1:
		return "one argument"
	case f.min == f.max:
		return strconv.Itoa(f.min) + " arguments"
	}
	return strconv.Itoa(f.min) + " to " + strconv.Itoa(f.max) + " arguments"
}

func functionNames() string {
	var names []string
	for n := range functions {
		names = append(names, n)
	}
	slices.Sort(names)
	return strings.Join(names, ", ") + " and bin"
}

// inSubnet is isIpInSubnet and its IPv4 and IPv6 kin: whether an address
// lies in a CIDR block (of the family, when one is named).
func inSubnet(family int) func([]value) value {
	return func(a []value) value {
		addr, err1 := netip.ParseAddr(a[0].text())
		pfx, err2 := netip.ParsePrefix(a[1].text())
		if err1 != nil || err2 != nil {
			return truth(false)
		}
		if family == 4 && !addr.Is4() || family == 6 && !addr.Is6() {
			return truth(false)
		}
		return truth(pfx.Contains(addr))
	}
}

func validIP(family int) func([]value) value {
	return func(a []value) value {
		addr, err := netip.ParseAddr(a[0].text())
		return truth(err == nil && (family == 0 || family == 4 && addr.Is4() || family == 6 && addr.Is6()))
	}
}

func numeric(f func(float64) float64) func([]value) value {
	return func(a []value) value {
		n, ok := a[0].number()
		if !ok {
			return value{}
		}
		return num(f(n))
	}
}

func textual(f func(string) string) func([]value) value {
	return func(a []value) value {
		if a[0].null() {
			return value{}
		}
		return str(f(a[0].text()))
	}
}

// functions are the scalar functions, by their lower-case names (a
// query's are matched without regard to case).
var functions = map[string]function{
	"isipinsubnet":   {2, 2, inSubnet(0)},
	"isipv4insubnet": {2, 2, inSubnet(4)},
	"isipv6insubnet": {2, 2, inSubnet(6)},
	"isvalidip":      {1, 1, validIP(0)},
	"isvalidipv4":    {1, 1, validIP(4)},
	"isvalidipv6":    {1, 1, validIP(6)},
	"ispresent":      {1, 1, func(a []value) value { return truth(!a[0].null()) }},
	"isempty":        {1, 1, func(a []value) value { return truth(a[0].null() || a[0].text() == "") }},
	"isblank":        {1, 1, func(a []value) value { return truth(a[0].null() || strings.TrimSpace(a[0].text()) == "") }},
	"strlen": {1, 1, func(a []value) value {
		if a[0].null() {
			return value{}
		}
		return num(float64(len([]rune(a[0].text()))))
	}},
	"tolower": {1, 1, textual(strings.ToLower)},
	"toupper": {1, 1, textual(strings.ToUpper)},
	"trim":    {1, 1, textual(strings.TrimSpace)},
	"concat": {1, 32, func(a []value) value {
		var b strings.Builder
		for _, v := range a {
			b.WriteString(v.text())
		}
		return str(b.String())
	}},
	"abs":   {1, 1, numeric(math.Abs)},
	"ceil":  {1, 1, numeric(math.Ceil)},
	"floor": {1, 1, numeric(math.Floor)},
	"sqrt":  {1, 1, numeric(math.Sqrt)},
	"log":   {1, 1, numeric(math.Log)},
}

// timestampLayout is how Logs Insights writes a time: 2006-01-02 15:04:05.000.
const timestampLayout = "2006-01-02 15:04:05.000"

// FormatTimestamp writes t as Logs Insights results do, in UTC.
func FormatTimestamp(t time.Time) string { return t.UTC().Format(timestampLayout) }

func parseTimestamp(s string) (time.Time, bool) {
	t, err := time.Parse(timestampLayout, s)
	return t, err == nil
}
