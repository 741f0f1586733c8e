// Package awsxml reads values out of the XML the EC2 and CloudWatch query
// APIs answer with, for tests that check an answer without decoding the
// whole of it.
package awsxml

import "strings"

// Field is the text of the first element named name in doc ("" if there
// is none): <name>text</name>.
func Field(doc, name string) string {
	i := strings.Index(doc, "<"+name+">")
	if i < 0 {
		return ""
	}
	rest := doc[i+len(name)+2:]
	end := strings.Index(rest, "<")
	if end < 0 {
		return ""
	}
	return rest[:end]
}
