package decodebench

import (
	"fmt"
	"testing"

	"github.com/caddyregister/caddyregister/caddyregister"
	"github.com/caddyregister/caddyregister/caddyregister/contract"
)

// The shapes are filled to the limits the server applies.
func TestLimitsMatchTheServer(t *testing.T) {
	if BodySize != caddyregister.DefaultMaxBodySize {
		t.Errorf("BodySize %d, handler's default body limit %d", BodySize, caddyregister.DefaultMaxBodySize)
	}
	if MaxDepth != contract.DefaultMaxDepth {
		t.Errorf("MaxDepth %d, shared decoder's %d", MaxDepth, contract.DefaultMaxDepth)
	}
	for _, d := range Decoders() {
		for _, s := range d.Shapes {
			if len(s.Body) > BodySize || len(s.Body) < BodySize-200 {
				t.Errorf("%s / %s: %d bytes, want just under %d", d.Name, s.Name, len(s.Body), BodySize)
			}
		}
	}
}

// TestDecoderAllocations holds every decoder to less than MaxAllocRatio×
// the body in heap allocations on each worst-case shape. (Time is the
// benchmark's business: make bench compares it with a password hash.)
func TestDecoderAllocations(t *testing.T) {
	for _, d := range Decoders() {
		for _, s := range d.Shapes {
			got := AllocBytes(d.Decode, s.Body, 3)
			if ratio := got / float64(len(s.Body)); ratio >= MaxAllocRatio {
				t.Errorf("%s / %s: %.0f bytes allocated for a %d-byte body (%.1f×, bound %d×)", d.Name, s.Name, got, len(s.Body), ratio, MaxAllocRatio)
			}
		}
	}
}

// BenchmarkDecoders times each decoder on each shape; make bench prints
// the worst against one argon2id hash.
func BenchmarkDecoders(b *testing.B) {
	for _, d := range Decoders() {
		for _, s := range d.Shapes {
			b.Run(fmt.Sprintf("%s/%s", d.Name, s.Name), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(s.Body)))
				for b.Loop() {
					_ = d.Decode(s.Body)
				}
			})
		}
	}
}
