package webhook

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyregister/caddyregister/caddyregister/mail"
)

// The Standard Webhooks reference libraries' test vector.
func TestSignatureVector(t *testing.T) {
	key, err := ParseSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	got := Signature([][]byte{key}, "msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Fatalf("Signature = %q, want %q", got, want)
	}
}

func TestParseSecret(t *testing.T) {
	for _, bad := range []string{
		"", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_not base64!",
		"whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 16)),
		"whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 65)),
	} {
		if _, err := ParseSecret(bad); err == nil {
			t.Errorf("ParseSecret(%q) accepted", bad)
		}
	}
}

func TestCheckURL(t *testing.T) {
	for _, ok := range []string{"http://app.internal/hooks", "https://app.example.com:8443/x"} {
		if err := CheckURL(ok); err != nil {
			t.Errorf("CheckURL(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "ftp://x", "/hooks", "http://", "https://user:pw@app/x"} {
		if err := CheckURL(bad); err == nil {
			t.Errorf("CheckURL(%q) accepted", bad)
		}
	}
}

// Only 2xx delivers; a 3xx is not followed; a 410 disables the endpoint,
// whose later deliveries fail permanently without a request.
func TestSenderStatuses(t *testing.T) {
	var status atomic.Int64
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.Header.Get("webhook-id") != "msg_1" || r.Header.Get("webhook-signature") == "" {
			t.Errorf("headers: %v", r.Header)
		}
		if int(status.Load()) == http.StatusFound {
			w.Header().Set("Location", "http://127.0.0.1:1/elsewhere")
		}
		w.WriteHeader(int(status.Load()))
	}))
	defer srv.Close()
	s := NewSender([]Endpoint{{URL: srv.URL, Keys: [][]byte{make([]byte, 32)}}}, nil, nil)
	ctx := context.Background()
	for _, c := range []struct {
		status    int
		ok, perma bool
	}{{200, true, false}, {204, true, false}, {302, false, false}, {400, false, false}, {500, false, false}, {410, false, true}} {
		status.Store(int64(c.status))
		err := s.Deliver(ctx, "msg_1", srv.URL, []byte(`{}`))
		if (err == nil) != c.ok || errors.Is(err, mail.ErrPermanent) != c.perma {
			t.Errorf("HTTP %d: %v", c.status, err)
		}
	}
	before := calls.Load()
	status.Store(200)
	if err := s.Deliver(ctx, "msg_1", srv.URL, []byte(`{}`)); !errors.Is(err, ErrGone) || !errors.Is(err, mail.ErrPermanent) {
		t.Fatalf("after 410: %v", err)
	}
	if calls.Load() != before || !s.Disabled(srv.URL) {
		t.Fatal("a disabled endpoint was called")
	}
	if err := s.Deliver(ctx, "msg_1", "http://unknown.example/", []byte(`{}`)); !errors.Is(err, mail.ErrPermanent) {
		t.Fatalf("unknown endpoint: %v", err)
	}
}

func TestHookVerdicts(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		switch {
		case strings.Contains(string(body), "allow"):
			_, _ = io.WriteString(w, `{"permissions":["beta"]}`)
		case strings.Contains(string(body), "empty"):
			w.WriteHeader(http.StatusNoContent)
		case strings.Contains(string(body), "refuse"):
			w.WriteHeader(http.StatusUnprocessableEntity)
			_, _ = io.WriteString(w, `{"message":"`+strings.Repeat("é", 400)+`"}`)
		case strings.Contains(string(body), "garbage"):
			_, _ = io.WriteString(w, `not json`)
		case strings.Contains(string(body), "slow"):
			time.Sleep(300 * time.Millisecond)
		default:
			w.WriteHeader(http.StatusBadGateway)
		}
	}))
	defer srv.Close()
	h := &Hook{URL: srv.URL, Keys: [][]byte{make([]byte, 32)}, Client: NewClient(100 * time.Millisecond)}
	ctx := context.Background()
	if v, err := h.Call(ctx, "msg_a", []byte(`"allow"`)); err != nil || !v.Allowed || len(v.Permissions) != 1 {
		t.Fatalf("allow: %+v %v", v, err)
	}
	if v, err := h.Call(ctx, "msg_a", []byte(`"empty"`)); err != nil || !v.Allowed {
		t.Fatalf("empty 204: %+v %v", v, err)
	}
	v, err := h.Call(ctx, "msg_a", []byte(`"refuse"`))
	if err != nil || v.Allowed || len(v.Message) > maxMessage || !strings.HasPrefix(v.Message, "éé") {
		t.Fatalf("refuse: %+v %v", v, err)
	}
	for _, b := range []string{`"garbage"`, `"slow"`, `"other"`} {
		if _, err := h.Call(ctx, "msg_a", []byte(b)); !errors.Is(err, ErrHookUnavailable) {
			t.Errorf("%s: %v, want ErrHookUnavailable", b, err)
		}
	}
}
