// Package loadreport is the report cmd/regload prints with -json, shared
// with the bench that reads it (internal/bench), so the two cannot drift.
package loadreport

// Result is one run's report (the -json line).
type Result struct {
	Method      string  `json:"method"`
	URL         string  `json:"url"`
	Concurrency int     `json:"concurrency"`
	Rate        float64 `json:"rate,omitempty"`
	// Requests = Responses + Errors.
	Requests  int64   `json:"requests"`
	Responses int64   `json:"responses"`
	Errors    int64   `json:"errors"`
	ElapsedS  float64 `json:"elapsed_s"`
	// RPS is responses (any status) per second; OKRPS counts 2xx only.
	RPS     float64 `json:"rps"`
	OKRPS   float64 `json:"ok_rps"`
	Latency Latency `json:"latency_ms"`
	// StatusLatency is the latency summary of each status code.
	StatusLatency map[string]Latency `json:"status_latency_ms"`
	// Status counts responses by code; RetryAfter counts those that
	// carried a Retry-After header.
	Status       map[string]int64  `json:"status"`
	RetryAfter   map[string]int64  `json:"retry_after,omitempty"`
	ErrorKinds   map[string]int64  `json:"error_kinds,omitempty"`
	ErrorSamples []string          `json:"error_samples,omitempty"`
	BodySamples  map[string]string `json:"body_samples,omitempty"`

	// With -pid: the server's peak resident set (the larger of VmHWM and
	// every VmRSS sampled), VmHWM, and the highest RssAnon and RssFile
	// sampled, in KiB.
	PID         int    `json:"pid,omitempty"`
	PeakRSSKiB  int64  `json:"peak_rss_kib,omitempty"`
	VmHWMKiB    int64  `json:"vmhwm_kib,omitempty"`
	PeakAnonKiB int64  `json:"peak_rss_anon_kib,omitempty"`
	PeakFileKiB int64  `json:"peak_rss_file_kib,omitempty"`
	RSSSamples  int    `json:"rss_samples,omitempty"`
	RSSError    string `json:"rss_error,omitempty"`
}

// Latency is the latency summary in milliseconds.
type Latency struct {
	Min  float64 `json:"min"`
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
}
