package logsinsights

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// flowEvents are flow log records as Logs Insights discovers their fields.
func flowEvents() []Event {
	recs := []struct {
		at               int // seconds after 10:50:00
		src, dst         string
		srcPort, dstPort int
		bytes            int
		action           string
	}{
		{0, "198.18.1.4", "198.18.1.10", 40000, 80, 120, "ACCEPT"},
		{10, "198.18.1.5", "198.18.1.10", 40001, 80, 3000, "ACCEPT"},
		{70, "198.18.9.9", "198.18.1.10", 40002, 22, 60, "REJECT"},
		{80, "198.18.1.4", "198.18.1.10", 40003, 80, 900, "ACCEPT"},
		{130, "fd00::4", "fd00::10", 40004, 443, 40, "REJECT"},
	}
	base := time.Date(2026, 11, 28, 10, 50, 0, 0, time.UTC)
	var out []Event
	for i, r := range recs {
		msg := fmt.Sprintf("2 111122223333 eni-1 %s %s %d %d 6 3 %d %d %d %s OK", r.src, r.dst, r.srcPort, r.dstPort, r.bytes, base.Unix()+int64(r.at), base.Unix()+int64(r.at)+5, r.action)
		out = append(out, Event{Ptr: fmt.Sprintf("p%d", i), Fields: map[string]string{
			"@timestamp": FormatTimestamp(base.Add(time.Duration(r.at) * time.Second)), "@message": msg, "@logStream": "eni-1-all", "@log": "111122223333:flows",
			"srcAddr": r.src, "dstAddr": r.dst, "srcPort": fmt.Sprint(r.srcPort), "dstPort": fmt.Sprint(r.dstPort), "bytes": fmt.Sprint(r.bytes), "action": r.action,
		}})
	}
	return out
}

// rows writes a result as lines of field=value, for comparing.
func rows(r Result) string {
	var lines []string
	for _, row := range r.Rows {
		var fs []string
		for _, f := range row {
			fs = append(fs, f.Field+"="+f.Value)
		}
		lines = append(lines, strings.Join(fs, " "))
	}
	return strings.Join(lines, "\n")
}

func TestQueriesAFlowLogsReaderRuns(t *testing.T) {
	for _, c := range []struct {
		q, want string
		matched int
	}{
		{`fields @timestamp, srcAddr, action | filter action = "REJECT" | sort @timestamp desc`,
			"@timestamp=2026-11-28 10:52:10.000 srcAddr=fd00::4 action=REJECT @ptr=p4\n@timestamp=2026-11-28 10:51:10.000 srcAddr=198.18.9.9 action=REJECT @ptr=p2", 2},
		{`stats sum(bytes) as total, count(*) by srcAddr | sort total desc`,
			"srcAddr=198.18.1.5 total=3000 count(*)=1\nsrcAddr=198.18.1.4 total=1020 count(*)=2\nsrcAddr=198.18.9.9 total=60 count(*)=1\nsrcAddr=fd00::4 total=40 count(*)=1", 5},
		{`filter isIpv4InSubnet(srcAddr, "198.18.1.0/24") and dstPort in [80, 443] | stats avg(bytes), min(bytes), max(bytes), count_distinct(srcAddr)`,
			"avg(bytes)=1340 min(bytes)=120 max(bytes)=3000 count_distinct(srcAddr)=2", 3},
		{`stats count(*) as flows by bin(1m) as minute | sort flows asc, minute`,
			"minute=2026-11-28 10:52:00.000 flows=1\nminute=2026-11-28 10:50:00.000 flows=2\nminute=2026-11-28 10:51:00.000 flows=2", 5},
		{`stats count(*) by bin(1m) | sort count(*) desc, bin(1m) desc | limit 2`,
			"bin(1m)=2026-11-28 10:51:00.000 count(*)=2\nbin(1m)=2026-11-28 10:50:00.000 count(*)=2", 5},
		{`filter @message like /REJECT/ and not isIpv6InSubnet(srcAddr, "fd00::/8") | display srcAddr, dstPort`,
			"srcAddr=198.18.9.9 dstPort=22 @ptr=p2", 1},
		{`filter action != "REJECT" | fields bytes * 8 as bits, srcPort % 2 as odd | sort bits | limit 2 | display bits, odd`,
			"bits=960 odd=0 @ptr=p0\nbits=7200 odd=1 @ptr=p3", 3},
		{`filter srcAddr not in ["198.18.1.4", "198.18.1.5"] | sort srcAddr | dedup action`,
			"@timestamp=2026-11-28 10:51:10.000 @message=2 111122223333 eni-1 198.18.9.9 198.18.1.10 40002 22 6 3 60 1795863070 1795863075 REJECT OK @logStream=eni-1-all @log=111122223333:flows @ptr=p2", 2},
		{`filter ispresent(srcAddr) and not isempty(action) and isValidIpV4(srcAddr) and strlen(srcAddr) = 10 and abs(floor(-2.5)) = 3 and ceil(2.1) = 3 | fields concat(tolower(action), ":", trim(" x ")) as tag, toupper("a") as up | display tag, up`,
			"tag=accept:x up=A @ptr=p3\ntag=reject:x up=A @ptr=p2\ntag=accept:x up=A @ptr=p1\ntag=accept:x up=A @ptr=p0", 4},
		{`filter isIpInSubnet(srcAddr, "fd00::/8") and isValidIp(srcAddr) and isValidIpV6(srcAddr) and not isValidIpV4(srcAddr) and not isblank(action) and sqrt(bytes - 4) = 6 + log(1) | display srcAddr`,
			"srcAddr=fd00::4 @ptr=p4", 1},
		{"# the newest two\nlimit 2 | fields `srcAddr`", "srcAddr=fd00::4 @ptr=p4\nsrcAddr=198.18.1.4 @ptr=p3", 5},
		{`parse @message "* * * * * * * * * * * * * *" as v, acct, eni, src, dst, sport, dport, proto, pkts, bytes, start, end, act, status | filter act = "REJECT" | stats sum(bytes) as b by src | sort b desc`,
			"src=198.18.9.9 b=60\nsrc=fd00::4 b=40", 2},
		{`parse @message /(?<NetworkInterface>eni-.*?) / | stats count(*) by NetworkInterface`,
			"NetworkInterface=eni-1 count(*)=5", 5},
		{`parse srcAddr /^(?<net>198\.18\.9)\./ | display srcAddr, net`,
			"srcAddr=fd00::4 @ptr=p4\nsrcAddr=198.18.1.4 @ptr=p3\nsrcAddr=198.18.9.9 net=198.18.9 @ptr=p2\nsrcAddr=198.18.1.5 @ptr=p1\nsrcAddr=198.18.1.4 @ptr=p0", 5},
		{`parse "* 111122223333 *-1 *" as version, kind, rest | filter rest like /REJECT/ | limit 1`,
			"version=2 kind=eni rest=fd00::4 fd00::10 40004 443 6 3 40 1795863130 1795863135 REJECT OK @ptr=p4", 2},
	} {
		q, err := Parse(c.q)
		if err != nil {
			t.Errorf("%s: %v", c.q, err)
			continue
		}
		got := q.Run(flowEvents(), 10000)
		if rows(got) != c.want || got.Matched != c.matched {
			t.Errorf("%s:\n%s\n(%d matched), want\n%s\n(%d matched)", c.q, rows(got), got.Matched, c.want, c.matched)
		}
	}
}

// TestParseTakesLinesApartAsTheGuideShows runs the parse examples of
// AWS's query syntax guide, and a regex whose alternatives name the same
// field: the side that did not match leaves it alone.
func TestParseTakesLinesApartAsTheGuideShows(t *testing.T) {
	var events []Event
	for _, m := range []string{"user=bob, method:GET, latency := 12", "user=bob, method:GET, latency := 20", "user=ann, method:PUT, latency := 7", "2026-11-28 [ERROR] disk full", "2026-11-28 [DEBUG] tick"} {
		events = append(events, Event{Fields: map[string]string{"@message": m}})
	}
	for _, c := range []struct{ q, want string }{
		{`parse @message "user=*, method:*, latency := *" as @user, @method, @latency | filter ispresent(@user) | stats avg(@latency) by @method, @user`,
			"@method=PUT @user=ann avg(@latency)=7\n@method=GET @user=bob avg(@latency)=16"},
		{`parse @message /user=(?<user2>.*?), method:(?<method2>.*?), latency := (?<latency2>.*?)$/ | filter ispresent(user2) | stats max(latency2) by method2`,
			"method2=PUT max(latency2)=7\nmethod2=GET max(latency2)=20"},
		{`FIELDS @message | PARSE @message "* [*] *" as loggingTime, loggingType, loggingMessage | FILTER loggingType IN ["ERROR", "INFO"] | DISPLAY loggingMessage, loggingType`,
			"loggingMessage=disk full loggingType=ERROR"},
		{`parse @message /user=(?<who>[a-z]+)|\[(?<who>[A-Z]+)\]/ | display who`,
			"who=DEBUG\nwho=ERROR\nwho=ann\nwho=bob\nwho=bob"},
	} {
		q, err := Parse(c.q)
		if err != nil {
			t.Errorf("%s: %v", c.q, err)
			continue
		}
		if got := rows(q.Run(events, 100)); got != c.want {
			t.Errorf("%s:\n%s\nwant\n%s", c.q, got, c.want)
		}
	}
}

func TestTheLimitOfTheCallCapsTheRows(t *testing.T) {
	q, _ := Parse(`fields srcAddr`)
	if got := q.Run(flowEvents(), 2); len(got.Rows) != 2 || got.Matched != 5 {
		t.Fatalf("%d rows, %d matched; want 2 of 5", len(got.Rows), got.Matched)
	}
}

func TestAMalformedQuerySaysWhereAndWhy(t *testing.T) {
	for q, want := range map[string]string{
		`fields srcAddr | filter`:                 "expected a field or a value",
		`filter action = "REJECT`:                 `" is not closed`,
		`stats median(bytes)`:                     "stats takes count, count_distinct, sum, avg, min or max",
		`filter sum(bytes) > 3`:                   "sum is an aggregate",
		`filter isIpv4InSubnet(srcAddr)`:          "isIpv4InSubnet takes 2 arguments",
		`pattern @message`:                        "the pattern command is not supported",
		`parse @message "no wildcard" as a`:       "has no * to extract a field with",
		`parse @message "* *" as a`:               "extracts 2 fields, and as names 1",
		`parse @message "* *"`:                    "expected as and the names of the glob's 2 fields",
		`parse @message /(?<a>x)(y)/`:             "a group without a name",
		`parse @message /x/`:                      "names no field",
		`parse @message /(?<a>x)/ as b`:           "not as",
		`parse @message bytes`:                    "parse takes a glob in quotes",
		`parse @message /(?<a>x/`:                 "the regular expression /(?<a>x/",
		`filter @message like /(/`:                "the regular expression /(/",
		`limit 0`:                                 "limit takes a positive whole number",
		`stats count(*) by bin(5 minutes)`:        "expected ), found",
		`stats count(*) by bin(7q)`:               "bin takes a period",
		`filter nosuch(srcAddr)`:                  `unknown function "nosuch"`,
		`fields srcAddr filter action = "REJECT"`: "expected | or the end of the query",
		`sort`:                                       "expected a field name",
		`filter srcAddr not = "x"`:                   "expected like or in after not",
		`fields srcAddr | frobnicate`:                `unknown command "frobnicate"`,
		`filter srcAddr in ["a", "b"`:                "expected ], found",
		`stats count(*) as`:                          "expected a field name",
		`filter srcAddr = "a" ; fields dstAddr`:      "unexpected character ';'",
		`fields srcAddr | filter srcAddr like bytes`: "expected a /regular expression/ or a \"string\"",
	} {
		_, err := Parse(q)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error with %q", q, err, want)
		}
	}
}

func TestNaturalSortPutsTextBeforeNumbers(t *testing.T) {
	in := []string{"10", "a12", "2", "a9", "B", "@", "111A", "5A"}
	var events []Event
	for _, v := range in {
		events = append(events, Event{Fields: map[string]string{"v": v}})
	}
	var got []string
	q, _ := Parse(`sort v | display v`)
	for _, r := range q.Run(events, 100).Rows {
		got = append(got, r[0].Value)
	}
	if want := "5A 111A @ B a9 a12 2 10"; strings.Join(got, " ") != want {
		t.Fatalf("sorted: %s, want %s", strings.Join(got, " "), want)
	}
}
