package testredis

import "testing"

// TestStartRetries: a server that exits at start (here a bad argument; in
// a test run, a port another process took first) is started again with
// freshly built arguments and a fresh port.
func TestStartRetries(t *testing.T) {
	tries := 0
	s, err := startServerArgs(nil, func() ([]string, error) {
		tries++
		if tries == 1 {
			return []string{"--no-such-option", "x"}, nil
		}
		return nil, nil
	})
	if err != nil {
		t.Fatalf("start after a failed attempt: %v", err)
	}
	defer s.Stop()
	if tries != 2 {
		t.Fatalf("%d attempts, want 2", tries)
	}
}
