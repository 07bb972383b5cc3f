package tests

import (
	"strings"
	"testing"
	"time"
)

// nthMailTo waits until n messages to rcpt have arrived and returns the
// n-th (1-based).
func (s *smtpSink) nthMailTo(rcpt string, n int, timeout time.Duration) *received {
	s.t.Helper()
	deadline := time.After(timeout)
	for {
		s.mu.Lock()
		seen := 0
		for _, m := range s.msgs {
			for _, to := range m.To {
				if strings.EqualFold(to, rcpt) {
					seen++
					if seen == n {
						s.mu.Unlock()
						return m
					}
					break
				}
			}
		}
		s.mu.Unlock()
		select {
		case <-s.new:
		case <-deadline:
			s.t.Fatalf("no mail %d to %s within %s (%d received)", n, rcpt, timeout, s.count())
			return nil
		}
	}
}

func TestRpostSquatterExpires(t *testing.T) { eachBackend(t, testRpostSquatterExpires) }

// testRpostSquatterExpires: someone registers another person's address
// with a password of their choosing and never confirms; once the link's
// lifetime has passed, the owner registers normally, the squatter's link
// no longer activates anything, and only the owner's password logs in.
func testRpostSquatterExpires(t *testing.T, backend string) {
	s := startRpost(t, backend, "link_ttl 1s")
	expectRegistered(t, s.register(rpostJSON, docRpostSample), "user@company.com")
	squatLink := s.mailLink("user@company.com", rpostActivateRE)
	if _, text, _ := s.sink.nthMailTo("user@company.com", 1, time.Second).parts(t); !strings.Contains(strings.Join(strings.Fields(text), " "), "If you did not register, ignore this mail.") {
		t.Error("the activation mail does not tell a reader who did not register to ignore it")
	}
	// Before the expiry the address is taken.
	if res := s.register(rpostJSON, rpostBody(map[string]string{"Password": `"Secret008"`, "ConfirmPassword": `"Secret008"`})); res.Status != 400 {
		t.Fatalf("register before the expiry: %d %s", res.Status, res.Body)
	}
	time.Sleep(1500 * time.Millisecond) // the link's lifetime passes
	expectRegistered(t, s.register(rpostJSON, rpostBody(map[string]string{"Password": `"Secret008"`, "ConfirmPassword": `"Secret008"`})), "user@company.com")
	m := s.sink.nthMailTo("user@company.com", 2, 30*time.Second)
	_, text, _ := m.parts(t)
	ownerLink := rpostActivateRE.FindString(text)
	if ownerLink == "" || ownerLink == squatLink {
		t.Fatalf("owner's mail has no fresh link:\n%s", text)
	}
	if res := s.activate(pathOf(t, squatLink)); res.Status != 400 {
		t.Fatalf("squatter's link after the replacement: %d %s", res.Status, res.Body)
	}
	if res := s.activate(pathOf(t, ownerLink)); res.Status >= 400 {
		t.Fatalf("owner's link: %d %s", res.Status, res.Body)
	}
	if st, _ := s.login("user@company.com", "Secret007"); st == 200 {
		t.Fatal("the squatter's password logs in")
	}
	if st, code := s.login("user@company.com", "Secret008"); st != 200 {
		t.Fatalf("owner's login: %d %s", st, code)
	}
}
