package main

import (
	"fmt"

	"github.com/caddyregister/caddyregister/internal/decodebench"
)

// decoders times every request decoder on each of its worst-case 64 KiB
// bodies (internal/decodebench) against one argon2id hash with the
// default parameters, measured in this run before and after (both in CPU
// time, steadier than wall time on a shared machine), and reports
// each decoder's slowest shape and its allocations ÷ the body's size.
func (b *bench) decoders() {
	h0, err := decodebench.HashTime(5)
	if err != nil {
		b.problem("decoders: hash: %v", err)
		return
	}
	type worst struct {
		time, alloc decodebench.Result
	}
	ds := decodebench.Decoders()
	ws := make([]worst, len(ds))
	for k, d := range ds {
		for _, s := range d.Shapes {
			r := decodebench.Measure(d.Decode, s, b.opt.decodeD)
			if r.NsPerOp > ws[k].time.NsPerOp {
				ws[k].time = r
			}
			if r.AllocRatio() > ws[k].alloc.AllocRatio() || ws[k].alloc.Size == 0 {
				ws[k].alloc = r
			}
		}
	}
	h1, err := decodebench.HashTime(5)
	if err != nil {
		b.problem("decoders: hash: %v", err)
		return
	}
	hash := (h0 + h1) / 2
	b.logf("one argon2id hash (m=19456KiB t=2 p=1, CPU time on one goroutine, median of 5 before and after): %.1f ms, %.1f ms", msf(h0), msf(h1))
	b.section(fmt.Sprintf("Decoders, worst 64 KiB body (one argon2id hash = %.1f ms CPU)", msf(hash)))
	for k, d := range ds {
		w := ws[k]
		ratio := w.time.NsPerOp / float64(hash.Nanoseconds())
		ok := ratio < decodebench.MaxHashFraction && w.alloc.AllocRatio() < decodebench.MaxAllocRatio
		b.logf("%s: slowest %q %.0f ns/op (%.3f× hash, alloc %.2f× body); most allocating %q %.2f× body",
			d.Name, w.time.Shape, w.time.NsPerOp, ratio, w.time.AllocRatio(), w.alloc.Shape, w.alloc.AllocRatio())
		b.add(d.Name,
			fmt.Sprintf("%q %s CPU ns/op = %.3f× hash, alloc %.2f× body (max %.2f× %q)",
				w.time.Shape, thousands(w.time.NsPerOp), ratio, w.time.AllocRatio(), w.alloc.AllocRatio(), w.alloc.Shape),
			fmt.Sprintf("< %.1f× hash, < %d× body", decodebench.MaxHashFraction, decodebench.MaxAllocRatio),
			verdict(ok))
	}
}

// thousands writes n rounded, with thin separators.
func thousands(n float64) string {
	s := fmt.Sprintf("%.0f", n)
	out := ""
	for len(s) > 3 {
		out = "," + s[len(s)-3:] + out
		s = s[:len(s)-3]
	}
	return s + out
}
