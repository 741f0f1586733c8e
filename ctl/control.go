package ctl

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"pvlink.dev/pvlink/snapshot"
)

// The client side of a forwarder's control channel: an HTTP exchange over
// its unix socket.

func unixClient(sock string, timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, "unix", sock)
			},
			DisableKeepAlives: true,
		},
	}
}

// forwarderStatus asks a forwarder for its status.
func forwarderStatus(sock string) (*snapshot.Status, error) {
	// A forwarder answers at once; one that does not within half a second
	// is taken as down (DNS leaves its AZ out of regional answers).
	resp, err := unixClient(sock, 500*time.Millisecond).Get("http://forwarder/status")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var st snapshot.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, err
	}
	return &st, nil
}

// pushSnapshot sends a snapshot to a forwarder: to apply, or (check) only
// to be judged. A refusal comes back as an error with the forwarder's
// reason.
func pushSnapshot(sock string, cfg *snapshot.Config, check bool) error {
	body, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	url := "http://forwarder/config"
	if check {
		url += "?check=1"
	}
	req, _ := http.NewRequest(http.MethodPut, url, bytes.NewReader(body))
	resp, err := unixClient(sock, 30*time.Second).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var res snapshot.ApplyResult
	data, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(data, &res); err != nil {
		return fmt.Errorf("forwarder answered %s: %s", resp.Status, data)
	}
	if res.Error != "" {
		return fmt.Errorf("%s", res.Error)
	}
	return nil
}
