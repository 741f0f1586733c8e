package ctl

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"pvlink.dev/pvlink/snapshot"
)

// flowLogWriter collects the forwarders' flow log records every second
// and appends each to the destination of every flow log that covers its
// ENI and takes its action.
type flowLogWriter struct {
	status func() *Report
	log    *slog.Logger

	started bool
	cursors map[string]flowCursor // by forwarder process
}

type flowCursor struct {
	boot int64
	last uint64
}

func newFlowLogWriter(status func() *Report, log *slog.Logger) *flowLogWriter {
	return &flowLogWriter{status: status, log: log, cursors: map[string]flowCursor{}}
}

func (w *flowLogWriter) run(stop <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	w.collect() // the baseline: records made before this ctld are not written twice
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			w.collect()
		}
	}
}

// collect reads every running forwarder's new records and writes them.
func (w *flowLogWriter) collect() {
	baseline := !w.started
	w.started = true
	r := w.status()
	if r == nil {
		return
	}
	type place struct {
		owner string
		logs  []FlowLogState
	}
	m := &State{FlowLogs: r.FlowLogs}
	places := map[string]place{}
	for _, e := range r.Endpoints {
		for _, eni := range e.ENIs {
			places[eni.ID] = place{owner: e.OwnerID, logs: m.FlowLogsOf(e, eni)}
		}
	}
	out := map[string][]string{}              // lines by destination
	streams := map[string]map[string]string{} // a log group's streams by interface
	for _, f := range r.Forwarders {
		if !f.Alive || f.Metrics == "" {
			continue
		}
		key := fmt.Sprintf("%s/%d", f.AZ, f.Worker)
		cur, seen := w.cursors[key]
		var b snapshot.FlowLogBatch
		after := cur.last
		if err := ForwarderJSON(f, fmt.Sprintf("/flowlogs?after=%d", after), &b); err != nil {
			continue
		}
		if seen && b.Boot != cur.boot {
			// A new process: its records start again from one.
			if err := ForwarderJSON(f, "/flowlogs?after=0", &b); err != nil {
				continue
			}
		}
		w.cursors[key] = flowCursor{boot: b.Boot, last: b.Last}
		if baseline || (!seen && b.Boot < startedAt.UnixNano()) {
			continue // written by an earlier ctld
		}
		for _, rec := range b.Records {
			p, ok := places[rec.ENI]
			if !ok {
				continue
			}
			for _, fl := range p.logs {
				if fl.TrafficType == "ALL" || fl.TrafficType == rec.Action {
					out[fl.Destination] = append(out[fl.Destination], FlowLogLine(p.owner, rec))
					if fl.DestinationType == "cloud-watch-logs" {
						if streams[fl.Destination] == nil {
							streams[fl.Destination] = map[string]string{}
						}
						streams[fl.Destination][rec.ENI] = FlowLogStreamName(rec.ENI, fl.TrafficType)
					}
				}
			}
		}
	}
	for dest, lines := range out {
		if err := noteFlowLogStreams(dest, streams[dest]); err != nil {
			w.log.Warn("flow log streams not noted", "destination", dest, "err", err)
		}
		if err := appendFlowLog(dest, lines); err != nil {
			w.log.Warn("flow log not written", "destination", dest, "records", len(lines), "err", err)
		}
	}
}

// FlowLogStreamName is the log stream of an interface's records in a log
// group, as AWS names it: the interface and the flow log's traffic type.
func FlowLogStreamName(eni, trafficType string) string {
	return eni + "-" + strings.ToLower(trafficType)
}

// FlowLogStreamsFile is where a log group's file has its streams' names
// by interface (JSON), noted as records are written: a group outlives
// the flow logs that named its streams.
func FlowLogStreamsFile(group string) string {
	return strings.TrimSuffix(group, ".log") + ".streams.json"
}

// FlowLogStreams reads a log group's streams by interface.
func FlowLogStreams(group string) (map[string]string, error) {
	data, err := os.ReadFile(FlowLogStreamsFile(group))
	if errors.Is(err, os.ErrNotExist) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, err
	}
	names := map[string]string{}
	return names, json.Unmarshal(data, &names)
}

// noteFlowLogStreams adds streams to a log group's, if they are new.
func noteFlowLogStreams(group string, streams map[string]string) error {
	if len(streams) == 0 {
		return nil
	}
	names, err := FlowLogStreams(group)
	if err != nil {
		return err
	}
	changed := false
	for eni, name := range streams {
		if _, ok := names[eni]; !ok {
			names[eni], changed = name, true
		}
	}
	if !changed {
		return nil
	}
	data, err := json.Marshal(names)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(group), 0o755); err != nil {
		return err
	}
	tmp := FlowLogStreamsFile(group) + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, FlowLogStreamsFile(group))
}

// startedAt is when this process began: a forwarder started before it
// ran under an earlier ctld, which wrote its records.
var startedAt = time.Now()

// appendFlowLog appends records to a flow log file, which starts with the
// field names, as the files AWS writes to S3 do.
func appendFlowLog(path string, lines []string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	var b strings.Builder
	if st, err := f.Stat(); err == nil && st.Size() == 0 {
		b.WriteString(FlowLogHeader + "\n")
	} else if err := IsFlowLogFile(path); err != nil {
		return err
	}
	for _, l := range lines {
		b.WriteString(l + "\n")
	}
	_, err = f.WriteString(b.String())
	return err
}

// IsFlowLogFile refuses a file that exists and is not a flow log (its
// first line the field names): ctld runs as root, and a flow log's
// destination is a path an API caller gives.
func IsFlowLogFile(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	head := make([]byte, len(FlowLogHeader)+1)
	n, _ := io.ReadFull(f, head)
	if n == 0 || string(head[:n]) == FlowLogHeader+"\n" {
		return nil
	}
	return fmt.Errorf("%s exists and is not a flow log (its first line is not %q): pvlink does not write into other files", path, FlowLogHeader)
}
