package logsinsights

import (
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Query is a parsed query: its commands in order.
type Query struct {
	cmds []command
}

type command interface{ isCommand() }

type (
	fieldsCmd  struct{ items []namedExpr }
	displayCmd struct{ names []string }
	filterCmd  struct{ cond expr }
	statsCmd   struct {
		aggs []aggregate
		by   []namedExpr
	}
	sortCmd  struct{ keys []sortKey }
	limitCmd struct{ n int }
	dedupCmd struct{ names []string }
	// parseCmd extracts fields from another: re's capturing groups, in
	// order, give the fields names (a glob's * each, by its as list; a
	// regex's named groups, by their names).
	parseCmd struct {
		field string
		re    *regexp.Regexp
		names []string
	}
)

func (fieldsCmd) isCommand()  {}
func (displayCmd) isCommand() {}
func (filterCmd) isCommand()  {}
func (statsCmd) isCommand()   {}
func (sortCmd) isCommand()    {}
func (limitCmd) isCommand()   {}
func (dedupCmd) isCommand()   {}
func (parseCmd) isCommand()   {}

// namedExpr is an expression and the name its value goes by: its alias,
// else its text.
type namedExpr struct {
	name string
	e    expr
}

type aggregate struct {
	name, fn string
	arg      expr // nil: count(*)
}

type sortKey struct {
	name string
	desc bool
}

// Parse reads a query, or says where and why it is not one.
func Parse(q string) (*Query, error) {
	toks, err := lex(q)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks, src: []rune(q)}
	out := &Query{}
	for {
		c, err := p.command()
		if err != nil {
			return nil, err
		}
		out.cmds = append(out.cmds, c)
		switch t := p.next(); t.kind {
		case tokEOF:
			return out, nil
		case tokPipe:
		default:
			return nil, errAt(t.pos, "expected | or the end of the query, found %q", t.text)
		}
	}
}

type parser struct {
	toks []token
	i    int
	src  []rune
}

func (p *parser) peek() token { return p.toks[p.i] }
func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tokEOF {
		p.i++
	}
	return t
}

func (p *parser) isOp(s string) bool {
	t := p.peek()
	return t.kind == tokOp && t.text == s
}

func (p *parser) isWord(s string) bool {
	t := p.peek()
	return t.kind == tokIdent && strings.EqualFold(t.text, s)
}

func (p *parser) expectOp(s string) error {
	if t := p.next(); t.kind != tokOp || t.text != s {
		return errAt(t.pos, "expected %s, found %q", s, t.text)
	}
	return nil
}

// text is the source between two token positions, trimmed: an
// expression's name when it has no alias.
func (p *parser) text(from, to int) string {
	return strings.Join(strings.Fields(string(p.src[from:to])), " ")
}

func (p *parser) command() (command, error) {
	t := p.next()
	if t.kind != tokIdent {
		return nil, errAt(t.pos, "expected a command (fields, filter, stats, sort, limit, display, dedup, parse), found %q", t.text)
	}
	switch strings.ToLower(t.text) {
	case "fields":
		items, err := p.namedList()
		return fieldsCmd{items}, err
	case "display":
		names, err := p.names()
		return displayCmd{names}, err
	case "dedup":
		names, err := p.names()
		return dedupCmd{names}, err
	case "filter":
		e, err := p.expr()
		return filterCmd{e}, err
	case "stats":
		return p.stats()
	case "sort":
		var keys []sortKey
		for {
			n, err := p.sortName()
			if err != nil {
				return nil, err
			}
			k := sortKey{name: n}
			switch {
			case p.isWord("desc"):
				p.next()
				k.desc = true
			case p.isWord("asc"):
				p.next()
			}
			keys = append(keys, k)
			if !p.isOp(",") {
				return sortCmd{keys}, nil
			}
			p.next()
		}
	case "limit":
		n := p.next()
		v, err := strconv.Atoi(n.text)
		if n.kind != tokNumber || err != nil || v < 1 {
			return nil, errAt(n.pos, "limit takes a positive whole number, found %q", n.text)
		}
		return limitCmd{v}, nil
	case "parse":
		return p.parse()
	case "unmask", "pattern", "diff", "filterindex", "source", "anomaly", "unnest", "lookup":
		return nil, errAt(t.pos, "the %s command is not supported by pvlink's Logs Insights (fields, filter, stats, sort, limit, display, dedup and parse are)", t.text)
	}
	return nil, errAt(t.pos, "unknown command %q", t.text)
}

// parse reads what follows the parse command: the field (@message when
// none is named), then a glob in quotes whose every * is a field, named in
// order by the as list that follows, or a /regex/ whose named groups
// ((?<name>...)) are the fields.
func (p *parser) parse() (command, error) {
	c := parseCmd{field: "@message"}
	if t := p.peek(); t.kind == tokIdent || t.kind == tokField {
		c.field, _ = p.name()
	}
	t := p.next()
	switch t.kind {
	case tokString:
		parts := strings.Split(t.text, "*")
		if len(parts) < 2 {
			return nil, errAt(t.pos, "the glob %q has no * to extract a field with", t.text)
		}
		var re strings.Builder
		for i, part := range parts {
			re.WriteString(regexp.QuoteMeta(part))
			switch {
			case i == len(parts)-1:
			case i == len(parts)-2 && parts[i+1] == "":
				re.WriteString("(.*)") // a * that ends the glob takes the rest
			default:
				re.WriteString("(.*?)")
			}
		}
		c.re = regexp.MustCompile(re.String())
		if !p.isWord("as") {
			return nil, errAt(p.peek().pos, "expected as and the names of the glob's %d fields, found %q", len(parts)-1, p.peek().text)
		}
		p.next()
		names, err := p.names()
		if err != nil {
			return nil, err
		}
		if len(names) != len(parts)-1 {
			return nil, errAt(t.pos, "the glob %q extracts %d fields, and as names %d", t.text, len(parts)-1, len(names))
		}
		c.names = names
	case tokRegex:
		re, err := regexp.Compile(t.text)
		if err != nil {
			return nil, errAt(t.pos, "the regular expression /%s/: %v", t.text, err)
		}
		for i, n := range re.SubexpNames() {
			if i > 0 && n == "" {
				return nil, errAt(t.pos, "the regular expression /%s/ has a group without a name: each (?<name>...) is a field", t.text)
			}
		}
		if re.NumSubexp() == 0 {
			return nil, errAt(t.pos, "the regular expression /%s/ names no field: each (?<name>...) is one", t.text)
		}
		if p.isWord("as") {
			return nil, errAt(p.peek().pos, "a regular expression names its fields with (?<name>...), not as")
		}
		c.re, c.names = re, re.SubexpNames()[1:]
	default:
		return nil, errAt(t.pos, "parse takes a glob in quotes (\"user=*, method=*\" as user, method) or a /regex/ with named groups, found %q", t.text)
	}
	return c, nil
}

// name is a field name, bare or `quoted`.
func (p *parser) name() (string, error) {
	t := p.next()
	if t.kind != tokIdent && t.kind != tokField {
		return "", errAt(t.pos, "expected a field name, found %q", t.text)
	}
	return t.text, nil
}

// sortName is a field name, or a column stats named by its text, such as
// count(*) or bin(5m): the text up to the matching parenthesis.
func (p *parser) sortName() (string, error) {
	from := p.peek().pos
	n, err := p.name()
	if err != nil || !p.isOp("(") {
		return n, err
	}
	for depth := 0; ; {
		t := p.next()
		switch {
		case t.kind == tokEOF:
			return "", errAt(t.pos, "( is not closed")
		case t.kind == tokOp && t.text == "(":
			depth++
		case t.kind == tokOp && t.text == ")":
			if depth--; depth == 0 {
				return p.text(from, t.pos+1), nil
			}
		}
	}
}

func (p *parser) names() ([]string, error) {
	var out []string
	for {
		n, err := p.name()
		if err != nil {
			return nil, err
		}
		out = append(out, n)
		if !p.isOp(",") {
			return out, nil
		}
		p.next()
	}
}

// namedList is expressions, each with an optional alias: fields and
// stats ... by.
func (p *parser) namedList() ([]namedExpr, error) {
	var out []namedExpr
	for {
		from := p.peek().pos
		e, err := p.expr()
		if err != nil {
			return nil, err
		}
		n := namedExpr{name: p.text(from, p.peek().pos), e: e}
		if f, ok := e.(fieldRef); ok {
			n.name = string(f)
		}
		if p.isWord("as") {
			p.next()
			if n.name, err = p.name(); err != nil {
				return nil, err
			}
		}
		out = append(out, n)
		if !p.isOp(",") {
			return out, nil
		}
		p.next()
	}
}

var aggregates = map[string]bool{"count": true, "count_distinct": true, "sum": true, "avg": true, "min": true, "max": true}

func (p *parser) stats() (command, error) {
	var s statsCmd
	for {
		from := p.peek().pos
		t := p.next()
		fn := strings.ToLower(t.text)
		if t.kind != tokIdent || !aggregates[fn] {
			return nil, errAt(t.pos, "stats takes count, count_distinct, sum, avg, min or max, found %q", t.text)
		}
		if err := p.expectOp("("); err != nil {
			return nil, err
		}
		a := aggregate{fn: fn}
		switch {
		case p.isOp("*") && fn == "count":
			p.next()
		case p.isOp(")") && fn == "count":
		default:
			e, err := p.expr()
			if err != nil {
				return nil, err
			}
			a.arg = e
		}
		if err := p.expectOp(")"); err != nil {
			return nil, err
		}
		a.name = p.text(from, p.peek().pos)
		if p.isWord("as") {
			p.next()
			n, err := p.name()
			if err != nil {
				return nil, err
			}
			a.name = n
		}
		s.aggs = append(s.aggs, a)
		if !p.isOp(",") {
			break
		}
		p.next()
	}
	if p.isWord("by") {
		p.next()
		by, err := p.namedList()
		if err != nil {
			return nil, err
		}
		s.by = by
	}
	return s, nil
}

// The expressions, loosest first: or, and, not, a comparison, + -, * / %,
// a unary minus, and an operand.

// chain parses operands of next joined, left to right, by the operators
// op finds (it takes the operator's token when it finds one).
func (p *parser) chain(op func() (string, bool), next func() (expr, error), join func(op string, l, r expr) expr) (expr, error) {
	l, err := next()
	if err != nil {
		return nil, err
	}
	for {
		o, ok := op()
		if !ok {
			return l, nil
		}
		r, err := next()
		if err != nil {
			return nil, err
		}
		l = join(o, l, r)
	}
}

// word and ops find an operator for chain.
func (p *parser) word(w string) func() (string, bool) {
	return func() (string, bool) {
		if !p.isWord(w) {
			return "", false
		}
		return p.next().text, true
	}
}

func (p *parser) ops(os ...string) func() (string, bool) {
	return func() (string, bool) {
		for _, o := range os {
			if p.isOp(o) {
				return p.next().text, true
			}
		}
		return "", false
	}
}

func (p *parser) expr() (expr, error) {
	return p.chain(p.word("or"), p.and, func(_ string, l, r expr) expr { return boolOp{or: true, l: l, r: r} })
}

func (p *parser) and() (expr, error) {
	return p.chain(p.word("and"), p.not, func(_ string, l, r expr) expr { return boolOp{l: l, r: r} })
}

func (p *parser) not() (expr, error) {
	if p.isWord("not") {
		p.next()
		e, err := p.not()
		return notOp{e}, err
	}
	return p.comparison()
}

func (p *parser) comparison() (expr, error) {
	l, err := p.sum()
	if err != nil {
		return nil, err
	}
	negate := false
	if p.isWord("not") {
		p.next()
		negate = true
		if !p.isWord("like") && !p.isWord("in") {
			return nil, errAt(p.peek().pos, "expected like or in after not")
		}
	}
	var e expr
	switch t := p.peek(); {
	case p.isWord("like") || t.kind == tokOp && t.text == "=~":
		p.next()
		m, err := p.pattern(t.kind == tokOp)
		if err != nil {
			return nil, err
		}
		e = likeOp{l: l, m: m}
	case p.isWord("in"):
		p.next()
		if err := p.expectOp("["); err != nil {
			return nil, err
		}
		list, err := p.exprList("]", p.sum)
		if err != nil {
			return nil, err
		}
		e = inOp{l: l, list: list}
	case t.kind == tokOp && (t.text == "=" || t.text == "==" || t.text == "!=" || t.text == "<" || t.text == "<=" || t.text == ">" || t.text == ">="):
		p.next()
		r, err := p.sum()
		if err != nil {
			return nil, err
		}
		return compare{op: t.text, l: l, r: r}, nil
	default:
		return l, nil
	}
	if negate {
		e = notOp{e}
	}
	return e, nil
}

// exprList reads items separated by commas, up to and with closer.
func (p *parser) exprList(closer string, item func() (expr, error)) ([]expr, error) {
	var list []expr
	for !p.isOp(closer) {
		v, err := item()
		if err != nil {
			return nil, err
		}
		list = append(list, v)
		if !p.isOp(",") {
			break
		}
		p.next()
	}
	return list, p.expectOp(closer)
}

// pattern is what like matches: a regex (/.../), or a string, which
// matches where it appears (=~ takes a regex only).
func (p *parser) pattern(regexOnly bool) (*regexp.Regexp, error) {
	t := p.next()
	switch {
	case t.kind == tokRegex:
		re, err := regexp.Compile(t.text)
		if err != nil {
			return nil, errAt(t.pos, "the regular expression /%s/: %v", t.text, err)
		}
		return re, nil
	case t.kind == tokString && !regexOnly:
		return regexp.MustCompile(regexp.QuoteMeta(t.text)), nil
	}
	return nil, errAt(t.pos, "expected a /regular expression/ or a \"string\", found %q", t.text)
}

func joinArith(op string, l, r expr) expr { return arith{op: op, l: l, r: r} }

func (p *parser) sum() (expr, error) { return p.chain(p.ops("+", "-"), p.product, joinArith) }

func (p *parser) product() (expr, error) { return p.chain(p.ops("*", "/", "%"), p.unary, joinArith) }

func (p *parser) unary() (expr, error) {
	if p.isOp("-") {
		p.next()
		e, err := p.unary()
		return arith{op: "-", l: literal{num(0)}, r: e}, err
	}
	return p.operand()
}

func (p *parser) operand() (expr, error) {
	t := p.next()
	switch t.kind {
	case tokNumber:
		f, err := strconv.ParseFloat(t.text, 64)
		if err != nil {
			return nil, errAt(t.pos, "bad number %q", t.text)
		}
		return literal{num(f)}, nil
	case tokString:
		return literal{str(t.text)}, nil
	case tokField:
		return fieldRef(t.text), nil
	case tokOp:
		if t.text == "(" {
			e, err := p.expr()
			if err != nil {
				return nil, err
			}
			return e, p.expectOp(")")
		}
	case tokIdent:
		if !p.isOp("(") {
			switch strings.ToLower(t.text) {
			case "and", "or", "not", "like", "in", "as", "by":
				return nil, errAt(t.pos, "expected a field or a value, found %q", t.text)
			}
			return fieldRef(t.text), nil
		}
		p.next()
		args, err := p.exprList(")", p.expr)
		if err != nil {
			return nil, err
		}
		return newCall(t, args)
	}
	return nil, errAt(t.pos, "expected a field or a value, found %q", t.text)
}

// newCall checks a function's name and arguments.
func newCall(t token, args []expr) (expr, error) {
	name := strings.ToLower(t.text)
	if name == "bin" {
		if len(args) != 1 {
			return nil, errAt(t.pos, "bin takes one period, such as bin(5m)")
		}
		period, ok := args[0].(fieldRef) // a number with its unit lexes as a name
		d, err := parsePeriod(string(period))
		if !ok || err != nil {
			return nil, errAt(t.pos, "bin takes a period such as 30s, 5m, 1h or 1d")
		}
		return binOp{d}, nil
	}
	f, ok := functions[name]
	if !ok {
		if aggregates[name] {
			return nil, errAt(t.pos, "%s is an aggregate: it goes in stats", t.text)
		}
		return nil, errAt(t.pos, "unknown function %q (pvlink knows %s)", t.text, functionNames())
	}
	if len(args) < f.min || len(args) > f.max {
		return nil, errAt(t.pos, "%s takes %s", t.text, f.arity())
	}
	return call{name: name, f: f, args: args}, nil
}

// parsePeriod reads a period of bin: a whole number and a unit.
func parsePeriod(s string) (time.Duration, error) {
	i := strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	if i <= 0 {
		return 0, strconv.ErrSyntax
	}
	n, err := strconv.Atoi(s[:i])
	if err != nil || n <= 0 {
		return 0, strconv.ErrSyntax
	}
	units := map[string]time.Duration{"ms": time.Millisecond, "s": time.Second, "sec": time.Second, "m": time.Minute, "min": time.Minute,
		"h": time.Hour, "hr": time.Hour, "d": 24 * time.Hour, "w": 7 * 24 * time.Hour}
	u, ok := units[strings.ToLower(s[i:])]
	if !ok {
		return 0, strconv.ErrSyntax
	}
	return time.Duration(n) * u, nil
}
