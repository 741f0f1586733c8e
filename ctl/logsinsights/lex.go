// Package logsinsights runs CloudWatch Logs Insights queries (its query
// language, Logs Insights QL) over log events: the commands fields,
// filter, stats, sort, limit, display and dedup, with the comparison,
// boolean, arithmetic and pattern operators, and the functions a flow
// log's reader uses (isIpv4InSubnet and its kin, ispresent, strlen, ...).
// What it does not know it refuses by name, as a malformed query, rather
// than answering something else.
package logsinsights

import (
	"fmt"
	"strings"
	"unicode"
)

type tokKind int

const (
	tokEOF tokKind = iota
	tokIdent
	tokNumber
	tokString
	tokRegex
	tokOp    // = == != < <= > >= =~ + - * / % , ( ) [ ]
	tokPipe  // |
	tokField // `quoted field`
)

type token struct {
	kind tokKind
	text string // the identifier, number, string's or regex's contents, operator
	pos  int
}

// Error is a query the language does not allow, with where and why.
type Error struct {
	Pos int
	Msg string
}

func (e *Error) Error() string { return fmt.Sprintf("%s at character %d", e.Msg, e.Pos+1) }

func errAt(pos int, format string, a ...any) error {
	return &Error{Pos: pos, Msg: fmt.Sprintf(format, a...)}
}

// operandNext reports whether, after prev, an operand may come: there a
// slash opens a regular expression, elsewhere it divides.
func operandNext(prev *token) bool {
	if prev == nil {
		return true
	}
	switch prev.kind {
	case tokOp:
		return prev.text != ")" && prev.text != "]"
	case tokPipe:
		return true
	case tokIdent:
		switch strings.ToLower(prev.text) {
		case "like", "and", "or", "not", "in", "filter", "by", "as", "parse":
			return true
		}
	}
	return false
}

// parsedField reports whether the tokens so far end with parse and the
// field it reads: what follows is parse's pattern, a /regex/ among them.
func parsedField(out []token) bool {
	if len(out) < 2 {
		return false
	}
	cmd, field := out[len(out)-2], out[len(out)-1]
	return cmd.kind == tokIdent && strings.EqualFold(cmd.text, "parse") && (field.kind == tokIdent || field.kind == tokField)
}

// lex splits a query into tokens; # starts a comment to the end of its line.
func lex(q string) ([]token, error) {
	var out []token
	rs := []rune(q)
	for i := 0; i < len(rs); {
		c := rs[i]
		var prev *token
		if len(out) > 0 {
			prev = &out[len(out)-1]
		}
		switch {
		case unicode.IsSpace(c):
			i++
		case c == '#':
			for i < len(rs) && rs[i] != '\n' {
				i++
			}
		case c == '|':
			out = append(out, token{tokPipe, "|", i})
			i++
		case c == '"' || c == '\'':
			s, n, err := quoted(rs, i, c)
			if err != nil {
				return nil, err
			}
			out = append(out, token{tokString, s, i})
			i = n
		case c == '`':
			s, n, err := quoted(rs, i, c)
			if err != nil {
				return nil, err
			}
			out = append(out, token{tokField, s, i})
			i = n
		case c == '/' && (operandNext(prev) || parsedField(out)):
			s, n, err := quoted(rs, i, c)
			if err != nil {
				return nil, err
			}
			out = append(out, token{tokRegex, s, i})
			i = n
		case unicode.IsDigit(c) || c == '.' && i+1 < len(rs) && unicode.IsDigit(rs[i+1]):
			j := i
			for j < len(rs) && (unicode.IsDigit(rs[j]) || rs[j] == '.') {
				j++
			}
			// A number with a unit is a period: 5m, 1h, 30s.
			k := j
			for k < len(rs) && unicode.IsLetter(rs[k]) {
				k++
			}
			kind := tokNumber
			if k > j {
				kind = tokIdent
			}
			out = append(out, token{kind, string(rs[i:k]), i})
			i = k
		case c == '@' || c == '_' || unicode.IsLetter(c):
			j := i + 1
			for j < len(rs) && (rs[j] == '_' || rs[j] == '.' || rs[j] == '@' || unicode.IsLetter(rs[j]) || unicode.IsDigit(rs[j])) {
				j++
			}
			out = append(out, token{tokIdent, string(rs[i:j]), i})
			i = j
		default:
			two := ""
			if i+1 < len(rs) {
				two = string(rs[i : i+2])
			}
			switch two {
			case "==", "!=", "<=", ">=", "=~":
				out = append(out, token{tokOp, two, i})
				i += 2
				continue
			}
			if strings.ContainsRune("=<>+-*/%,()[]", c) {
				out = append(out, token{tokOp, string(c), i})
				i++
				continue
			}
			return nil, errAt(i, "unexpected character %q", c)
		}
	}
	return append(out, token{tokEOF, "", len(rs)}), nil
}

// quoted reads a string, field name or regex opened by q at rs[i], with
// backslash escapes; it returns the contents and the index after it. A
// regex keeps its escapes (they are the pattern's).
func quoted(rs []rune, i int, q rune) (string, int, error) {
	var b strings.Builder
	for j := i + 1; j < len(rs); j++ {
		switch rs[j] {
		case '\\':
			if j+1 < len(rs) {
				if q == '/' && rs[j+1] != '/' {
					b.WriteRune('\\')
				}
				b.WriteRune(rs[j+1])
				j++
				continue
			}
		case q:
			return b.String(), j + 1, nil
		}
		b.WriteRune(rs[j])
	}
	return "", 0, errAt(i, "%c is not closed", q)
}
