package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"pvlink.dev/pvlink/internal/fabrictest"
	"pvlink.dev/pvlink/peer"
)

// topLine is an AZ's row of `pvlink top` as the screen shows it.
type topLine struct {
	connPS, active int
	in, out        float64
}

// topScreen reads a tmux pane running `pvlink top` and gives the row of
// each AZ of the endpoint.
func topScreen(t *testing.T, session string) (string, map[string]topLine) {
	t.Helper()
	out, err := exec.Command("tmux", "capture-pane", "-p", "-t", session).CombinedOutput()
	if err != nil {
		t.Fatalf("tmux capture-pane: %v\n%s", err, out)
	}
	rows := map[string]topLine{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 8 && strings.HasPrefix(f[0], "use1-") {
			var r topLine
			r.connPS, _ = strconv.Atoi(f[1])
			r.active, _ = strconv.Atoi(f[2])
			r.in, _ = strconv.ParseFloat(f[3], 64)
			r.out, _ = strconv.ParseFloat(f[4], 64)
			rows[f[0]] = r
		}
	}
	return string(out), rows
}

func TestTopShowsNumbersThatMoveWithTheLoad(t *testing.T) {
	f := fabrictest.Up(t, demoTopology(t))
	if _, err := exec.LookPath("tmux"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("tmux is not installed (make test installs it)")
		}
		t.Skip("needs tmux")
	}
	session := "pvlink-top-" + f.Name
	if out, err := exec.Command("tmux", "new-session", "-d", "-s", session, "-x", "160", "-y", "40",
		fabrictest.Binary(t)+" top "+f.Name+" --interval 300ms").CombinedOutput(); err != nil {
		t.Fatalf("tmux: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("tmux", "kill-session", "-t", session).Run() })
	e := f.Status.Endpoints[0]
	az1, az2 := e.ENIs[0], e.ENIs[1]

	var screen string
	var rows map[string]topLine
	waitUntil(t, 10*time.Second, "top's first frame, idle", func() bool {
		screen, rows = topScreen(t, session)
		r, ok := rows[az1.AZ]
		return ok && r.connPS == 0 && r.active == 0
	})

	// Load on az1 only: held connections, and a stream of short transfers
	// (at most 2,000, for at most 20 s) until the test has seen it.
	dial := fabrictest.DialFrom(f.Netns(t, "consumer"))
	const held = 5
	var conns []interface{ Close() error }
	for range held {
		c, err := dial(context.Background(), "tcp", az1.IP+":80")
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("held\n"))
		conns = append(conns, c)
	}
	ctx, stop := context.WithTimeout(context.Background(), 20*time.Second)
	defer stop()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 2000 && ctx.Err() == nil; i++ {
			(&peer.Client{Addr: az1.IP + ":80", Bytes: 4 << 20, Timeout: 5 * time.Second, Dial: dial}).Run(ctx)
		}
	}()
	waitUntil(t, 10*time.Second, "top to show the load on "+az1.AZ, func() bool {
		screen, rows = topScreen(t, session)
		r := rows[az1.AZ]
		return r.connPS > 0 && r.active >= held && r.in > 0 && r.out > 0
	})
	t.Logf("under load:\n%s", strings.TrimSpace(screen))
	if r := rows[az2.AZ]; r.connPS != 0 || r.active != 0 || r.in != 0 {
		t.Errorf("%s shows traffic it did not carry: %+v", az2.AZ, r)
	}

	// The load stops: the numbers go back.
	stop()
	wg.Wait()
	for _, c := range conns {
		c.Close()
	}
	waitUntil(t, 10*time.Second, "top to show the load gone", func() bool {
		screen, rows = topScreen(t, session)
		r := rows[az1.AZ]
		return r.connPS == 0 && r.active == 0 && r.in == 0 && r.out == 0
	})

	// q quits, as in top.
	exec.Command("tmux", "send-keys", "-t", session, "q").Run()
	waitUntil(t, 5*time.Second, "top to quit on q", func() bool {
		return exec.Command("tmux", "has-session", "-t", session).Run() != nil
	})
}
