package decodebench

import (
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"syscall"
	"time"

	"github.com/caddyregister/caddyregister/caddyregister/contract"
	"github.com/caddyregister/caddyregister/caddyregister/contract/indiqus"
	"github.com/caddyregister/caddyregister/caddyregister/contract/noraina"
	"github.com/caddyregister/caddyregister/caddyregister/contract/rpost"
	"github.com/caddyregister/caddyregister/caddyregister/contract/saymon"
	"github.com/caddyregister/caddyregister/caddyregister/contract/soajs"
	"github.com/caddyregister/caddyregister/caddyregister/password"
)

// Targets of the worst case.
const (
	// MaxHashFraction: a decode costs less than this fraction of one
	// argon2id hash with the default parameters.
	MaxHashFraction = 0.1
	// MaxAllocRatio: a decode allocates less than this many times the
	// body's size.
	MaxAllocRatio = 8
)

// Decoder is one request decoder and the shapes that attack it.
type Decoder struct {
	Name   string
	Decode func(body []byte) error
	Shapes []Shape
}

// sharedTarget stands for the structs the contracts decode with
// contract.DecodeJSON: strings, a nested object and a number. None holds
// a list: encoding/json spends a string header and slice growth on each
// element (about 18× a body of one long list of strings), so a contract
// that reads a list walks it (contract.Elements, as soajs' groups).
type sharedTarget struct {
	Name  *string `json:"name"`
	Inner *struct {
		Code  *string      `json:"code"`
		Count *json.Number `json:"count"`
	} `json:"inner"`
}

// Decoders lists every decoder with its shapes.
func Decoders() []Decoder {
	return []Decoder{
		{
			Name: "shared JSON (contract.DecodeJSON)",
			Decode: func(b []byte) error {
				var v sharedTarget
				return contract.DecodeJSON(b, &v, 0)
			},
			Shapes: jsonShapes(fields{Str: "name", Obj: "inner", NumOpen: `{"inner":{`, Num: "count", NumClose: "}}"}),
		},
		{
			Name:   "noraina register",
			Decode: noraina.DecodeRegister,
			Shapes: jsonShapes(fields{Str: "mail", Obj: "billing", NumOpen: `{"billing":{`, Num: "creditBalance", NumClose: "}}"}),
		},
		{
			Name:   "saymon signup",
			Decode: saymon.DecodeSignup,
			Shapes: jsonShapes(fields{Str: "login"}),
		},
		{
			Name:   "indiqus createNewUser",
			Decode: indiqus.DecodeCreate,
			Shapes: jsonShapes(fields{Str: "fname", NumOpen: "{", Num: "zipcode", NumClose: "}"}),
		},
		{
			Name:   "soajs addUser (JSON)",
			Decode: func(b []byte) error { return soajs.DecodeAddUser("application/json", b) },
			Shapes: append(jsonShapes(fields{Str: "username", Arr: "groups", Obj: "pin"}),
				Shape{"profile of many members", fill(`{"profile":"{`, func(i int) string { return fmt.Sprintf(`\"%x\":0`, i) }, ",", `}"}`)},
				Shape{"profile of deep arrays", fill(`{"profile":"{`, same(`\"a\":`+nest(MaxDepth-1, "0")), ",", `}"}`)},
			),
		},
		{
			Name:   "soajs addUser (form)",
			Decode: func(b []byte) error { return soajs.DecodeAddUser("application/x-www-form-urlencoded", b) },
			Shapes: formShapes("username", "groups"),
		},
		{
			Name:   "rpost Register",
			Decode: rpost.DecodeRegister,
			Shapes: jsonShapes(fields{Str: "Email"}),
		},
	}
}

// Result is what one decoder costs on one shape.
type Result struct {
	Shape      string
	Size       int
	NsPerOp    float64
	BytesPerOp float64
}

// AllocRatio is the bytes allocated per decode ÷ the body's size.
func (r Result) AllocRatio() float64 { return r.BytesPerOp / float64(r.Size) }

// AllocBytes is the mean heap bytes one decode of body allocates, over
// runs decodes (after one to warm caches and pools).
func AllocBytes(decode func([]byte) error, body []byte, runs int) float64 {
	_ = decode(body)
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	for range runs {
		_ = decode(body)
	}
	runtime.ReadMemStats(&m1)
	return float64(m1.TotalAlloc-m0.TotalAlloc) / float64(runs)
}

// cpuTime is this process's CPU time (all threads: the GC's work counts).
// CPU time, not wall time, because the machine may be shared: a
// neighbour's load stretches wall time but not the work done.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Measure runs decode on body for at least minTime of CPU in three rounds
// and keeps the cheapest round's CPU time per decode, and counts its
// allocations.
func Measure(decode func([]byte) error, s Shape, minTime time.Duration) Result {
	best := 0.0
	for range 3 {
		n := 1
		for {
			c0 := cpuTime()
			for range n {
				_ = decode(s.Body)
			}
			el := cpuTime() - c0
			if el >= minTime/3 {
				ns := float64(el.Nanoseconds()) / float64(n)
				if best == 0 || ns < best {
					best = ns
				}
				break
			}
			n *= 2
		}
	}
	return Result{Shape: s.Name, Size: len(s.Body), NsPerOp: best, BytesPerOp: AllocBytes(decode, s.Body, 5)}
}

// HashTime is the CPU time of one argon2id hash with the repository's
// default parameters (one goroutine): the median of n.
func HashTime(n int) (time.Duration, error) {
	h := password.DefaultArgon2id()
	ds := make([]time.Duration, 0, n)
	for range n {
		c0 := cpuTime()
		if _, err := h.Hash([]byte("correct horse battery staple")); err != nil {
			return 0, err
		}
		ds = append(ds, cpuTime()-c0)
	}
	slices.Sort(ds)
	return ds[len(ds)/2], nil
}
