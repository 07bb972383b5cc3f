package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"
)

// DefaultHookTimeout bounds a before_register call: a signup waits for it.
const DefaultHookTimeout = 2 * time.Second

// maxMessage bounds the refusal message taken from the app's answer.
const maxMessage = 300

// Hook is the blocking before_register call: the app sees a proposed
// registration and lets it through or refuses it.
type Hook struct {
	URL  string
	Keys [][]byte
	// Client makes the call; its timeout bounds it (see NewClient).
	Client *http.Client
	// Now is the clock of the signature timestamp; default time.Now.
	Now func() time.Time
}

// Verdict is the app's answer.
type Verdict struct {
	// Allowed: a 2xx answer.
	Allowed bool
	// Permissions the app adds (2xx answer {"permissions": [...]}).
	Permissions []string
	// Message is the app's reason for a refusal (4xx answer
	// {"message": "..."}), "" when it gave none.
	Message string
}

// ErrHookUnavailable wraps every call that got no verdict: a timeout, a
// network error, a 5xx, a redirect or a 2xx whose body is not the JSON
// object the contract promises. The caller applies on_error.
var ErrHookUnavailable = errors.New("before_register hook gave no verdict")

// Call POSTs body (a signed event whose id is id) and returns the app's
// verdict, or an error wrapping ErrHookUnavailable.
func (h *Hook) Call(ctx context.Context, id string, body []byte) (Verdict, error) {
	now := time.Now
	if h.Now != nil {
		now = h.Now
	}
	client := h.Client
	if client == nil {
		client = NewClient(DefaultHookTimeout)
	}
	req, err := newRequest(ctx, h.URL, id, now(), body, h.Keys)
	if err != nil {
		return Verdict{}, fmt.Errorf("%w: %w", ErrHookUnavailable, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return Verdict{}, fmt.Errorf("%w: %w", ErrHookUnavailable, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return Verdict{}, fmt.Errorf("%w: reading the answer: %w", ErrHookUnavailable, err)
	}
	var answer struct {
		Permissions []string `json:"permissions"`
		Message     string   `json:"message"`
	}
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		if len(strings.TrimSpace(string(raw))) > 0 {
			if err := json.Unmarshal(raw, &answer); err != nil {
				return Verdict{}, fmt.Errorf("%w: HTTP %d with a body that is not a JSON object: %w", ErrHookUnavailable, c, err)
			}
		}
		return Verdict{Allowed: true, Permissions: answer.Permissions}, nil
	case c >= 400 && c < 500:
		// A body that is not JSON is still a refusal, without a message.
		_ = json.Unmarshal(raw, &answer)
		return Verdict{Message: clip(strings.TrimSpace(answer.Message), maxMessage)}, nil
	}
	return Verdict{}, fmt.Errorf("%w: HTTP %d", ErrHookUnavailable, resp.StatusCode)
}

// clip cuts s to at most n bytes on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
