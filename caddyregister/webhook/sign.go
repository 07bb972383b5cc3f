// Package webhook tells the app behind the plugin what happens to its
// users, the Standard Webhooks way (https://www.standardwebhooks.com/):
// it POSTs signed JSON events to the configured endpoints (Sender, which
// the outbox worker drives) and asks the app, before a registration, whether
// to let it through (Hook). It knows HTTP and nothing of the engine or of
// Caddy: the Caddy layer wires it to both.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// SecretPrefix starts a Standard Webhooks secret: "whsec_" and the key in
// standard base64.
const SecretPrefix = "whsec_"

// Secret key lengths the spec allows, in bytes.
const (
	MinSecretLen = 24
	MaxSecretLen = 64
)

// ParseSecret decodes a "whsec_<base64>" secret into its key.
func ParseSecret(s string) ([]byte, error) {
	b64, ok := strings.CutPrefix(strings.TrimSpace(s), SecretPrefix)
	if !ok {
		return nil, fmt.Errorf("webhook secret must start with %q", SecretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("webhook secret is not base64 after %q: %w", SecretPrefix, err)
	}
	if len(key) < MinSecretLen || len(key) > MaxSecretLen {
		return nil, fmt.Errorf("webhook secret is %d bytes; Standard Webhooks keys are %d to %d", len(key), MinSecretLen, MaxSecretLen)
	}
	return key, nil
}

// Signature is the webhook-signature header value for a message: one
// "v1,<base64 HMAC-SHA256 of id.timestamp.body>" per key, space-separated,
// so a receiver holding any one of the keys (rotation) can verify.
func Signature(keys [][]byte, id string, ts time.Time, body []byte) string {
	unix := strconv.FormatInt(ts.Unix(), 10)
	sigs := make([]string, 0, len(keys))
	for _, k := range keys {
		mac := hmac.New(sha256.New, k)
		mac.Write([]byte(id))
		mac.Write([]byte{'.'})
		mac.Write([]byte(unix))
		mac.Write([]byte{'.'})
		mac.Write(body)
		sigs = append(sigs, "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	}
	return strings.Join(sigs, " ")
}

// newRequest builds a signed POST of body to url.
func newRequest(ctx context.Context, url, id string, ts time.Time, body []byte, keys [][]byte) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("webhook: request to %s: %w", url, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "caddyregister-webhook/1")
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts.Unix(), 10))
	if len(keys) > 0 {
		req.Header.Set("webhook-signature", Signature(keys, id, ts, body))
	}
	return req, nil
}

// CheckURL accepts an endpoint URL: absolute http:// or https:// with a
// host, no user info (credentials belong in the signature, not the URL,
// which is logged).
func CheckURL(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return fmt.Errorf("webhook url %q: %w", raw, err)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("webhook url %q must be http:// or https://", raw)
	case u.Host == "":
		return fmt.Errorf("webhook url %q has no host", raw)
	case u.User != nil:
		return fmt.Errorf("webhook url %q must not carry credentials", raw)
	}
	return nil
}
