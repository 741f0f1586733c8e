package api

import "fmt"

const stsNamespace = "https://sts.amazonaws.com/doc/2011-06-15/"

// sts answers GetCallerIdentity: the account whose keys signed the call,
// as its root user. It is what `aws sts get-caller-identity` and the SDK
// tools that learn their account before anything else ask first.
func (h *Handler) sts(caller string, q query) (any, error) {
	if action := q.str("Action"); action != "GetCallerIdentity" {
		return nil, &apiError{400, "InvalidAction", fmt.Sprintf("The action %s is not valid for this web service (pvlink serves GetCallerIdentity of STS)", action)}
	}
	return struct {
		Arn     string `xml:"Arn"`
		UserID  string `xml:"UserId"`
		Account string `xml:"Account"`
	}{"arn:aws:iam::" + caller + ":root", caller, caller}, nil
}
