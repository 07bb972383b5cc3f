// caddyregister: this file was added.

//go:build !linux

package argon2

// OffHeap reports whether [NewScratch] takes its memory from outside the Go
// heap, so that the collector neither counts it nor scans it.
const OffHeap = false

// newBlocks returns n blocks from the Go heap.
func newBlocks(_ *Scratch, n uint32) []block { return make([]block, n) }
