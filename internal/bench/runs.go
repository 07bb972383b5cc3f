package main

import (
	"fmt"
	"math"
	"net/http"
	"runtime"
	"strconv"
	"time"

	"github.com/caddyregister/caddyregister/caddyregister/password"
)

// The measured runs: registrations per store against the bare hash rate,
// the cheap paths against respond, and the overload check.

// registrations drives noraina registrations in -reg-rounds rounds,
// measuring the bare hash rate before the first round and after each one.
// A shared machine's speed drifts by more than the 10% the target allows
// within a minute; alternating in short rounds puts that drift on both
// sides of the ratio alike, as the cheap paths' rounds do. It returns the
// rounds' sum, the mean hash figure and how far the hash rate moved
// (spread ÷ mean).
func (b *bench) registrations(store string, c *caddy) (*loadResult, *hashFig, float64, error) {
	rounds := max(1, b.opt.regRounds)
	each := b.opt.regDur / time.Duration(rounds)
	hashes := []*hashFig{b.hashRate(fmt.Sprintf("before %s round 1", store))}
	var total loadResult
	var err error
	for i := range rounds {
		var r *loadResult
		r, err = b.load(fmt.Sprintf("registrations c=%d %s %d/%d", b.opt.regC, each, i+1, rounds), c.pid(),
			"-preset", "noraina", "-url", "http://"+c.addr, "-c", strconv.Itoa(b.opt.regC), "-d", each.String(), "-timeout", "30s")
		hashes = append(hashes, b.hashRate(fmt.Sprintf("after %s round %d", store, i+1)))
		if err != nil {
			break
		}
		if hb, ha := hashes[i], hashes[i+1]; hb != nil && ha != nil {
			b.logf("  round %d: %.1f registrations/s ÷ %.1f hashes/s (mean of before and after) = %.2f",
				i+1, r.rate(http.StatusCreated), (hb.opsPerSec+ha.opsPerSec)/2, 2*r.rate(http.StatusCreated)/(hb.opsPerSec+ha.opsPerSec))
		}
		total.add(r)
		total.PeakRSSKiB = max(total.PeakRSSKiB, r.PeakRSSKiB)
		total.PeakAnonKiB = max(total.PeakAnonKiB, r.PeakAnonKiB)
		total.PeakFileKiB = max(total.PeakFileKiB, r.PeakFileKiB)
	}
	h := meanHash(hashes...)
	var noisy float64
	if h != nil {
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, x := range hashes {
			if x != nil {
				lo, hi = min(lo, x.opsPerSec), max(hi, x.opsPerSec)
			}
		}
		noisy = (hi - lo) / h.opsPerSec
	}
	if err != nil {
		return nil, h, noisy, err
	}
	return &total, h, noisy, nil
}

func (b *bench) storeRuns(store, redisURL string) {
	b.section(fmt.Sprintf("%s store (demo Caddyfile, rate limits off)", store))
	c, err := b.startCaddy(store, redisURL)
	if err != nil {
		b.problem("%s: start caddy: %v", store, err)
		return
	}
	defer c.stop()
	base := "http://" + c.addr

	// Warm-up, and the token for GET /api/me.
	status, tok, _, err := register(c.addr)
	if err != nil || status != http.StatusCreated {
		b.problem("%s: first registration: status %d, %v; log:\n%s", store, status, err, tail(c.log, 10))
		return
	}
	sessTok, err := accountSession(c.addr)
	if err != nil {
		b.problem("%s: account session: %v; log:\n%s", store, err, tail(c.log, 10))
		return
	}
	var transportErrors int64
	defer func() {
		b.add("transport errors (all runs above)", strconv.FormatInt(transportErrors, 10), "0", verdict(transportErrors == 0))
	}()

	reg, h, noisy, err := b.registrations(store, c)
	if h != nil {
		b.add(fmt.Sprintf("bare hash rate (mean of %d, around the rounds)", b.opt.regRounds+1), h.String(), "", "")
	}
	if err != nil {
		b.problem("%s: registrations: %v", store, err)
	} else {
		transportErrors += reg.Errors
		rps := reg.rate(http.StatusCreated)
		val := fmt.Sprintf("%.1f /s (p50 ≤ %.0f ms, p99 ≤ %.0f ms)", rps, reg.Latency.P50, reg.Latency.P99)
		if o := reg.others(http.StatusCreated); o != "" {
			val += "; also " + o
		}
		b.add(fmt.Sprintf("registrations/s (c=%d, %s in %d rounds)", b.opt.regC, b.opt.regDur, b.opt.regRounds), val, "", "")
		if h != nil {
			ratio := rps / h.opsPerSec
			val := fmt.Sprintf("%.3f", ratio) // three places: a rounded 0.90 may be below the target
			if noisy > noisyHash {
				val += fmt.Sprintf(" (noisy: the hash rate moved %.0f%% over the rounds; see the CPU-time ratio)", 100*noisy)
			}
			b.add("registrations/s ÷ hashes/s", val, fmt.Sprintf("≥ %.1f", regTarget), verdict(ratio >= regTarget && reg.Errors == 0))
			if cpu := reg.cpuPer(http.StatusCreated); cpu > 0 {
				ratio := float64(h.cpuPerHash) / float64(cpu)
				b.add("  by CPU time: hash ÷ server per registration",
					fmt.Sprintf("%.2f (%.1f ms ÷ %.1f ms)", ratio, msf(h.cpuPerHash), msf(cpu)), fmt.Sprintf("≥ %.1f", regTarget), verdict(ratio >= regTarget))
			}
		}
		b.add("server peak RSS (registrations)", fmt.Sprintf("%.0f MiB (anon %.0f, file %.0f)",
			float64(reg.PeakRSSKiB)/1024, float64(reg.PeakAnonKiB)/1024, float64(reg.PeakFileKiB)/1024), "", "")
	}

	// Cheap paths against `respond`, interleaved in rounds so a
	// neighbour's load falls on all three alike.
	type path struct {
		label, row string
		code       int
		args       []string
		total      loadResult
	}
	paths := []*path{
		{label: "respond GET / (404)", row: "respond baseline GET /", code: http.StatusNotFound, args: []string{"-url", base + "/"}},
		{label: "GET /api/me (200)", row: "GET /api/me with a token", code: http.StatusOK,
			args: []string{"-url", base + "/api/me", "-header", "x-access-token: " + tok}},
		{label: "GET /account/me (200)", row: "GET /account/me with a session token", code: http.StatusOK,
			args: []string{"-url", base + "/account/me", "-header", "Authorization: Bearer " + sessTok}},
		{label: "POST /api/register invalid (400)", row: "POST /api/register refused by validation", code: http.StatusBadRequest,
			args: []string{"-url", base + "/api/register", "-method", "POST", "-body", invalidBody}},
	}
	rounds := max(1, b.opt.cheapRounds)
	each := b.opt.cheapDur / time.Duration(rounds)
	for i := range rounds {
		for _, p := range paths {
			r, err := b.load(fmt.Sprintf("%s %d/%d", p.label, i+1, rounds), c.pid(),
				append([]string{"-c", strconv.Itoa(b.opt.cheapC), "-d", each.String()}, p.args...)...)
			if err != nil {
				b.problem("%s: %s: %v", store, p.label, err)
				return
			}
			p.total.add(r)
		}
	}
	what := fmt.Sprintf("c=%d, %s in %d rounds", b.opt.cheapC, b.opt.cheapDur, rounds)
	respond := &paths[0].total
	transportErrors += respond.Errors
	base404 := respond.rate(http.StatusNotFound)
	val := fmt.Sprintf("%.0f req/s (%.0f µs server CPU each)", base404, us(respond.cpuPer(http.StatusNotFound)))
	if o := respond.others(http.StatusNotFound); o != "" {
		val += "; also " + o
	}
	b.add(fmt.Sprintf("respond baseline GET / (%s)", what), val, "", "")
	for _, p := range paths[1:] {
		r := &p.total
		transportErrors += r.Errors
		rps := r.rate(p.code)
		ratio := 0.0
		if base404 > 0 {
			ratio = rps / base404
		}
		val := fmt.Sprintf("%.0f req/s = %.2f × respond", rps, ratio)
		if o := r.others(p.code); o != "" {
			val += "; also " + o
		}
		b.add(fmt.Sprintf("%s (%d)", p.row, p.code), val, fmt.Sprintf("≥ %.1f × respond", cheapTarget), verdict(ratio >= cheapTarget && r.others(p.code) == ""))
		if cpu, cpu0 := r.cpuPer(p.code), respond.cpuPer(http.StatusNotFound); cpu > 0 && cpu0 > 0 {
			ratio := float64(cpu0) / float64(cpu)
			b.add("  by server CPU per request", fmt.Sprintf("%.2f (%.0f µs vs %.0f µs)", ratio, us(cpu), us(cpu0)),
				fmt.Sprintf("≥ %.1f", cheapTarget), verdict(ratio >= cheapTarget))
		}
	}
}

// ---------------------------------------------------------------------------
// Overload.

func (b *bench) overload() {
	b.section(fmt.Sprintf("overload: %d clients registering for %s (redis store, rate limits off)", b.opt.overC, b.opt.overDur))
	c, err := b.startCaddy("overload", b.redis.URL(1))
	if err != nil {
		b.problem("overload: start caddy: %v", err)
		return
	}
	defer c.stop()
	if status, _, _, err := register(c.addr); err != nil || status != http.StatusCreated {
		b.problem("overload: first registration: status %d, %v", status, err)
		return
	}
	idleRSS := procRSS(c.pid())
	hBefore := b.hashRate("before the overload run")
	r, err := b.load(fmt.Sprintf("registrations c=%d %s", b.opt.overC, b.opt.overDur), c.pid(),
		"-preset", "noraina", "-url", "http://"+c.addr, "-c", strconv.Itoa(b.opt.overC), "-d", b.opt.overDur.String(), "-timeout", "60s")
	if err != nil {
		b.problem("overload: %v", err)
		return
	}
	// The normal registration right after.
	status, _, lat, regErr := register(c.addr)
	hAfter := b.hashRate("after the overload run")
	h := meanHash(hBefore, hAfter)
	if h != nil {
		b.add("bare hash rate (mean of before, after)", h.String(), "", "")
	}

	b.add("status mix", r.mix(), "201 and 503 only", verdict(r.others(http.StatusCreated, http.StatusServiceUnavailable) == "" && r.Requests > 0))
	n503 := r.Status["503"]
	b.add("503 with Retry-After", fmt.Sprintf("%d of %d", r.RetryAfter["503"], n503), "all", verdict(r.RetryAfter["503"] == n503))
	under := fmt.Sprintf("%.1f /s", r.rate(http.StatusCreated))
	if h != nil {
		under += fmt.Sprintf(" = %.2f × hashes/s", r.rate(http.StatusCreated)/h.opsPerSec)
	}
	b.add("registrations/s under overload", under, "", "")
	b.add("transport errors", fmt.Sprintf("%d", r.Errors), "0", verdict(r.Errors == 0))

	poolSize := runtime.GOMAXPROCS(0) // the demo leaves hash_pool_size at its default, GOMAXPROCS
	hashMiB := float64(password.DefaultArgon2id().MemoryKiB) / 1024
	bound := float64(poolSize)*hashMiB + rssSlackMiB
	peak := float64(r.PeakRSSKiB) / 1024
	rssVal := fmt.Sprintf("%.0f MiB (anon %.0f, file %.0f; %.0f at idle)", peak, float64(r.PeakAnonKiB)/1024, float64(r.PeakFileKiB)/1024, float64(idleRSS)/1024)
	if r.RSSError != "" {
		rssVal += " (" + r.RSSError + ")"
	}
	b.add("server peak RSS", rssVal, fmt.Sprintf("≤ %d × %.0f MiB + %d MiB = %.0f MiB", poolSize, hashMiB, rssSlackMiB, bound), verdict(r.PeakRSSKiB > 0 && peak <= bound))

	if h != nil {
		latBound := password.DefaultMaxWait + h.perHash
		b.add("max latency", fmt.Sprintf("%.0f ms (p50 %.0f, p99 %.0f; max 201 %.0f, max 503 %.0f)",
			r.Latency.Max, r.Latency.P50, r.Latency.P99, r.StatusLatency["201"].Max, r.StatusLatency["503"].Max),
			fmt.Sprintf("≤ %s wait + %.0f ms hash = %.0f ms", password.DefaultMaxWait, msf(h.perHash), msf(latBound)),
			verdict(r.Latency.Max > 0 && r.Latency.Max <= msf(latBound)))
	} else {
		b.add("max latency", fmt.Sprintf("%.0f ms", r.Latency.Max), "no hash time measured", "")
	}
	if regErr != nil {
		b.add("registration right after", fmt.Sprintf("error: %v", regErr), "201", "FAIL")
	} else {
		b.add("registration right after", fmt.Sprintf("%d in %.0f ms", status, msf(lat)), "201", verdict(status == http.StatusCreated))
	}
}

// ---------------------------------------------------------------------------
// Summary.
