package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"
)

// rssSampler samples /proc/<pid>/status (VmRSS, VmHWM) every interval and
// keeps the peaks. VmHWM is the kernel's own high-water mark of the
// resident set over the process's life, so short spikes between samples
// are not missed.
type rssSampler struct {
	pid      int
	interval time.Duration
	stop     chan struct{}
	done     chan struct{}

	mu       sync.Mutex
	peak     procMem // highest of each field sampled
	samples  int
	firstErr error
}

// procMem is the memory of a process in KiB, from /proc/<pid>/status.
type procMem struct {
	RSS  int64 // VmRSS
	HWM  int64 // VmHWM: peak RSS over the process's life
	Anon int64 // RssAnon: heap, stacks
	File int64 // RssFile: mapped files (the binary's text, bbolt's mmap)
}

func startRSSSampler(pid int, interval time.Duration) (*rssSampler, error) {
	s := &rssSampler{pid: pid, interval: interval, stop: make(chan struct{}), done: make(chan struct{})}
	if err := s.sample(); err != nil {
		return nil, err
	}
	go s.loop()
	return s, nil
}

func (s *rssSampler) loop() {
	defer close(s.done)
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			_ = s.sample()
			return
		case <-t.C:
			_ = s.sample()
		}
	}
}

func (s *rssSampler) sample() error {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.pid))
	var m procMem
	if err == nil {
		m, err = parseStatus(b)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		if s.firstErr == nil {
			s.firstErr = err
		}
		return err
	}
	s.samples++
	s.peak.RSS = max(s.peak.RSS, m.RSS)
	s.peak.HWM = max(s.peak.HWM, m.HWM)
	s.peak.Anon = max(s.peak.Anon, m.Anon)
	s.peak.File = max(s.peak.File, m.File)
	return nil
}

// Stop takes a last sample and returns the peaks (peak.RSS is the larger
// of VmHWM and every VmRSS sampled), the number of samples and the first
// sampling error (the process may have exited).
func (s *rssSampler) Stop() (peak procMem, samples int, err error) {
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	peak = s.peak
	peak.RSS = max(peak.RSS, peak.HWM)
	return peak, s.samples, s.firstErr
}

// parseStatus reads VmRSS and VmHWM (required) and RssAnon and RssFile
// (Linux 4.5+) from /proc/<pid>/status.
func parseStatus(b []byte) (m procMem, err error) {
	found := 0
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Bytes()
		key, rest, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		var dst *int64
		switch string(key) {
		case "VmRSS":
			dst = &m.RSS
			found++
		case "VmHWM":
			dst = &m.HWM
			found++
		case "RssAnon":
			dst = &m.Anon
		case "RssFile":
			dst = &m.File
		default:
			continue
		}
		f := bytes.Fields(rest)
		if len(f) < 1 {
			return procMem{}, fmt.Errorf("proc status: bad line %q", line)
		}
		v, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			return procMem{}, fmt.Errorf("proc status: bad line %q", line)
		}
		if len(f) > 1 && string(f[1]) != "kB" {
			return procMem{}, fmt.Errorf("proc status: unexpected unit in %q", line)
		}
		*dst = v
	}
	if found < 2 {
		return procMem{}, fmt.Errorf("proc status: no VmRSS/VmHWM (kernel thread or not Linux?)")
	}
	return m, nil
}
