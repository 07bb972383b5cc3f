package tests

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddyregister/caddyregister/caddyregister/captcha"
)

// challengeTTL draws a CAPTCHA and reads, in one step, its stored answer
// hash and the time Redis will keep it, before the test spends any time
// solving it: with a short captcha_ttl the challenge may be gone by then.
func (s *saymonSite) challengeTTL() (token, answer, key string, ttl time.Duration) {
	s.t.Helper()
	res := s.do(http.MethodGet, "/node/api/users/captcha", rootAuth, "")
	if res.Status != 200 {
		s.t.Fatalf("captcha: %d %s", res.Status, res.Body)
	}
	var ch struct {
		CAPTCHA string `json:"CAPTCHA"`
		Token   string `json:"token"`
	}
	if err := json.Unmarshal(res.Body, &ch); err != nil || ch.Token == "" {
		s.t.Fatalf("captcha reply: %s", res.Body)
	}
	key = "{" + s.ns + "}:challenge:" + ch.Token
	var get *redis.StringCmd
	var pttl *redis.DurationCmd
	if _, err := s.rdb.TxPipelined(s.t.Context(), func(p redis.Pipeliner) error {
		get, pttl = p.Get(s.t.Context(), key), p.PTTL(s.t.Context(), key)
		return nil
	}); err != nil {
		s.t.Fatalf("stored challenge: %v", err)
	}
	stored, _ := get.Bytes()
	alpha := []rune(captcha.DefaultAlphabet)
	for _, a := range alpha {
		for _, b := range alpha {
			for _, c := range alpha {
				cand := string([]rune{a, b, c})
				if captcha.Check(stored, cand) {
					if strings.Contains(ch.CAPTCHA, cand) {
						s.t.Fatalf("the answer %q is readable in the SVG", cand)
					}
					return ch.Token, cand, key, pttl.Val()
				}
			}
		}
	}
	s.t.Fatal("could not solve the CAPTCHA")
	return "", "", "", 0
}

// waitExpired waits until Redis no longer has key (a key read after its
// TTL is gone at once), polling: the expiry is the event waited for.
func (s *saymonSite) waitExpired(key string) {
	s.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, err := s.rdb.Exists(s.t.Context(), key).Result()
		if err != nil {
			s.t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s still stored after 30s", key)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
