package mail_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	netmail "net/mail"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddyregister/caddyregister/caddyregister/mail"
)

func parseURL(t *testing.T, raw string) (mail.Sender, string) {
	t.Helper()
	s, from, err := mail.ParseURL(raw)
	if err != nil {
		t.Fatalf("ParseURL(%q): %v", raw, err)
	}
	return s, from
}

func send(t *testing.T, s mail.Sender, m *mail.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.Send(ctx, m); err != nil {
		t.Fatalf("Send: %v", err)
	}
}

func only(t *testing.T, k *sink) received {
	t.Helper()
	msgs := k.Messages()
	if len(msgs) != 1 {
		t.Fatalf("sink got %d messages, want 1", len(msgs))
	}
	return msgs[0]
}

// rawHeaderLines returns the unfolded-as-sent header lines of a raw message
// (everything before the first empty line), for checks on what is literally
// there rather than on what a lenient parser makes of it.
func rawHeaderLines(raw []byte) []string {
	head, _, _ := bytes.Cut(raw, []byte("\r\n\r\n"))
	return strings.Split(string(head), "\r\n")
}

func countHeader(lines []string, name string) int {
	n := 0
	for _, l := range lines {
		if strings.HasPrefix(strings.ToLower(l), strings.ToLower(name)+":") {
			n++
		}
	}
	return n
}

// parts decodes a received message into content type → decoded body.
func parts(t *testing.T, raw []byte) (*netmail.Message, map[string]string) {
	t.Helper()
	msg, err := netmail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("received message does not parse: %v\n%s", err, raw)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatalf("Content-Type: %v", err)
	}
	out := map[string]string{}
	if !strings.HasPrefix(mt, "multipart/") {
		out[mt] = decodeBody(t, textproto.MIMEHeader(msg.Header), msg.Body)
		return msg, out
	}
	out[mt] = ""
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("multipart: %v", err)
		}
		pt, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		out[pt] = decodeBody(t, p.Header, p)
	}
	return msg, out
}

func decodeBody(t *testing.T, h textproto.MIMEHeader, r io.Reader) string {
	t.Helper()
	switch strings.ToLower(h.Get("Content-Transfer-Encoding")) {
	case "quoted-printable":
		r = quotedprintable.NewReader(r)
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, r)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("decode body: %v", err)
	}
	return strings.ReplaceAll(string(b), "\r\n", "\n")
}

func TestSMTPDeliversMultipartAlternative(t *testing.T) {
	k := startSink(t, sinkOptions{})
	s, from := parseURL(t, fmt.Sprintf("smtp://127.0.0.1:%d?from=%s", k.Port,
		"Acme+Accounts+%3Caccounts%40acme.example%3E"))
	if from != `"Acme Accounts" <accounts@acme.example>` {
		t.Errorf("from = %q", from)
	}
	send(t, s, &mail.Message{
		To:      []string{"ana@example.com"},
		Subject: "Activate your account",
		Text:    "Hello Ana,\nopen https://app.example/activate?t=abc\n",
		HTML:    "<p>Hello Ana,</p><p><a href=\"https://app.example/activate?t=abc\">activate</a></p>",
		ID:      "0123456789abcdef01234567",
	})
	got := only(t, k)
	if got.From != "accounts@acme.example" || len(got.To) != 1 || got.To[0] != "ana@example.com" {
		t.Errorf("envelope from %q to %q", got.From, got.To)
	}
	if got.TLS {
		t.Error("session used TLS though the sink offers no STARTTLS")
	}
	msg, ps := parts(t, got.Raw)
	if _, ok := ps["multipart/alternative"]; !ok {
		t.Fatalf("not multipart/alternative: %v\n%s", msg.Header.Get("Content-Type"), got.Raw)
	}
	if !strings.Contains(ps["text/plain"], "open https://app.example/activate?t=abc") {
		t.Errorf("text part = %q", ps["text/plain"])
	}
	if !strings.Contains(ps["text/html"], `<a href="https://app.example/activate?t=abc">`) {
		t.Errorf("html part = %q", ps["text/html"])
	}
	if id := msg.Header.Get("Message-Id"); id != "<0123456789abcdef01234567@acme.example>" {
		t.Errorf("Message-ID = %q", id)
	}
	if s := msg.Header.Get("Subject"); s != "Activate your account" {
		t.Errorf("Subject = %q", s)
	}
	if f := msg.Header.Get("From"); f != `"Acme Accounts" <accounts@acme.example>` {
		t.Errorf("From = %q", f)
	}
	if msg.Header.Get("Date") == "" {
		t.Error("no Date header")
	}
}

func TestSMTPTextOnlyAndDefaultFrom(t *testing.T) {
	k := startSink(t, sinkOptions{})
	s, from := parseURL(t, fmt.Sprintf("smtp://127.0.0.1:%d", k.Port))
	if from != "noreply@127.0.0.1" {
		t.Errorf("default from = %q", from)
	}
	send(t, s, &mail.Message{To: []string{"Bob Smith <bob@example.com>"}, Subject: "Hi", Text: "plain"})
	got := only(t, k)
	if got.From != "noreply@127.0.0.1" || got.To[0] != "bob@example.com" {
		t.Errorf("envelope from %q to %q", got.From, got.To)
	}
	msg, ps := parts(t, got.Raw)
	if strings.TrimSpace(ps["text/plain"]) != "plain" {
		t.Errorf("body = %q (%v)", ps["text/plain"], ps)
	}
	if to := msg.Header.Get("To"); to != `"Bob Smith" <bob@example.com>` {
		t.Errorf("To = %q", to)
	}
	// Without an outbox id go-mail still sets a Message-ID.
	if msg.Header.Get("Message-Id") == "" {
		t.Error("no Message-ID")
	}
}

func TestSMTPAuthPlainSucceeds(t *testing.T) {
	pass := "p@ss:w/rd"
	k := startSink(t, sinkOptions{User: "mailer@acme.example", Pass: pass})
	// Userinfo is percent-encoded in the URL and decoded by ParseURL.
	s, _ := parseURL(t, fmt.Sprintf("smtp://mailer%%40acme.example:p%%40ss%%3Aw%%2Frd@127.0.0.1:%d?auth=plain&from=app@acme.example", k.Port))
	send(t, s, &mail.Message{To: []string{"ana@example.com"}, Subject: "s", Text: "t"})
	if got := only(t, k); got.AuthUser != "mailer@acme.example" {
		t.Errorf("authenticated as %q", got.AuthUser)
	}
}

func TestSMTPAuthAutoOverStartTLS(t *testing.T) {
	k := startSink(t, sinkOptions{User: "u", Pass: "secret", StartTLS: true})
	// Default auth=auto and starttls=opportunistic: the client upgrades,
	// then picks PLAIN, which auto only allows over TLS.
	s, _ := parseURL(t, fmt.Sprintf("smtp://u:secret@127.0.0.1:%d?insecure_skip_verify=true", k.Port))
	send(t, s, &mail.Message{To: []string{"ana@example.com"}, Subject: "s", Text: "t"})
	got := only(t, k)
	if !got.TLS || got.AuthUser != "u" {
		t.Errorf("tls=%v auth user=%q; want STARTTLS and AUTH", got.TLS, got.AuthUser)
	}
}

func TestSMTPStartTLSVerifiesCertificate(t *testing.T) {
	k := startSink(t, sinkOptions{StartTLS: true})
	// Opportunistic STARTTLS still verifies the certificate the server
	// offers; a self-signed one fails unless skipping is asked for.
	s, _ := parseURL(t, fmt.Sprintf("smtp://127.0.0.1:%d", k.Port))
	err := s.Send(context.Background(), &mail.Message{To: []string{"a@example.com"}, Subject: "s", Text: "t"})
	if err == nil {
		t.Fatal("sent over STARTTLS with an unverifiable certificate")
	}
	if len(k.Messages()) != 0 {
		t.Error("message delivered despite certificate failure")
	}
}

func TestSMTPStartTLSMandatoryRefusesPlainServer(t *testing.T) {
	k := startSink(t, sinkOptions{})
	s, _ := parseURL(t, fmt.Sprintf("smtp://127.0.0.1:%d?starttls=mandatory", k.Port))
	err := s.Send(context.Background(), &mail.Message{To: []string{"a@example.com"}, Subject: "s", Text: "t"})
	if err == nil || !strings.Contains(err.Error(), "STARTTLS") {
		t.Fatalf("err = %v, want a STARTTLS refusal", err)
	}
	if len(k.Messages()) != 0 {
		t.Error("message delivered without the mandatory STARTTLS")
	}
}

func TestSMTPAuthFailureHidesPassword(t *testing.T) {
	for _, echo := range []bool{false, true} {
		t.Run(fmt.Sprintf("echo=%v", echo), func(t *testing.T) {
			k := startSink(t, sinkOptions{User: "u", Pass: "right-password", EchoAuthError: echo})
			wrong := "Wr0ng-S3cret-Pass"
			s, _ := parseURL(t, fmt.Sprintf("smtp://u:%s@127.0.0.1:%d?auth=plain", wrong, k.Port))
			err := s.Send(context.Background(), &mail.Message{To: []string{"a@example.com"}, Subject: "s", Text: "t"})
			if err == nil {
				t.Fatal("Send succeeded with a wrong password")
			}
			msg := err.Error()
			// Also through every wrapped layer.
			for e := error(err); e != nil; e = errors.Unwrap(e) {
				msg += " | " + e.Error()
			}
			blob := base64.StdEncoding.EncodeToString([]byte("\x00u\x00" + wrong))
			if strings.Contains(msg, wrong) || strings.Contains(msg, blob) {
				t.Fatalf("error leaks the password: %v", msg)
			}
			if echo && !strings.Contains(msg, "[redacted]") {
				t.Errorf("echoed password not visibly redacted: %v", err)
			}
			if !strings.Contains(msg, fmt.Sprintf("smtp://127.0.0.1:%d", k.Port)) {
				t.Errorf("error does not name the server: %v", err)
			}
			if len(k.Messages()) != 0 {
				t.Error("message accepted without authentication")
			}
		})
	}
}

func TestSMTPSImplicitTLS(t *testing.T) {
	k := startSink(t, sinkOptions{ImplicitTLS: true, User: "u", Pass: "pw"})
	s, _ := parseURL(t, fmt.Sprintf("smtps://u:pw@127.0.0.1:%d?insecure_skip_verify=true&from=app@acme.example", k.Port))
	send(t, s, &mail.Message{To: []string{"ana@example.com"}, Subject: "over tls", Text: "t", HTML: "<b>h</b>"})
	got := only(t, k)
	if !got.TLS || got.AuthUser != "u" {
		t.Errorf("tls=%v auth=%q", got.TLS, got.AuthUser)
	}

	// Without insecure_skip_verify the self-signed certificate is refused.
	s, _ = parseURL(t, fmt.Sprintf("smtps://u:pw@127.0.0.1:%d", k.Port))
	err := s.Send(context.Background(), &mail.Message{To: []string{"a@example.com"}, Subject: "s", Text: "t"})
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("err = %v, want a certificate error", err)
	}
}

func TestHeaderInjection(t *testing.T) {
	k := startSink(t, sinkOptions{})
	s, _ := parseURL(t, fmt.Sprintf("smtp://127.0.0.1:%d?from=app@acme.example", k.Port))
	send(t, s, &mail.Message{
		From:    "Evil\r\nBcc: from-victim@evil.example\r\n <app@acme.example>",
		To:      []string{"Ana\r\nBcc: to-victim@evil.example <ana@example.com>"},
		Subject: "Welcome\r\nBcc: victim@evil.example\nX-Injected: yes\r\n\r\nbody takeover",
		Text:    "t",
		ID:      "id\r\nBcc: id-victim@evil.example",
	})
	got := only(t, k)
	if len(got.To) != 1 || got.To[0] != "ana@example.com" {
		t.Errorf("envelope recipients = %q; an injected Bcc must not add one", got.To)
	}
	lines := rawHeaderLines(got.Raw)
	if n := countHeader(lines, "Subject"); n != 1 {
		t.Errorf("%d Subject headers, want 1:\n%s", n, got.Raw)
	}
	for _, h := range []string{"Bcc", "X-Injected"} {
		if n := countHeader(lines, h); n != 0 {
			t.Errorf("injected %s header:\n%s", h, got.Raw)
		}
	}
	msg, ps := parts(t, got.Raw)
	if subj := msg.Header.Get("Subject"); subj != "Welcome Bcc: victim@evil.example X-Injected: yes body takeover" {
		t.Errorf("Subject = %q", subj)
	}
	if strings.TrimSpace(ps["text/plain"]) != "t" {
		t.Errorf("body = %q", ps["text/plain"])
	}
	for _, name := range []string{"From", "To"} {
		a, err := netmail.ParseAddress(msg.Header.Get(name))
		if err != nil {
			t.Errorf("%s header %q: %v", name, msg.Header.Get(name), err)
			continue
		}
		if strings.ContainsAny(a.Name, "\r\n") {
			t.Errorf("%s display name %q keeps a line break", name, a.Name)
		}
	}
}

func TestSendRejectsUnusableMessages(t *testing.T) {
	s, _ := parseURL(t, "smtp://127.0.0.1:1") // never dialled: every case fails first
	for name, m := range map[string]*mail.Message{
		"no recipient":  {Subject: "s", Text: "t"},
		"bad recipient": {To: []string{"not an address"}, Subject: "s", Text: "t"},
		"no body":       {To: []string{"a@example.com"}, Subject: "s"},
		"bad from":      {From: "nope", To: []string{"a@example.com"}, Subject: "s", Text: "t"},
	} {
		err := s.Send(context.Background(), m)
		if !errors.Is(err, mail.ErrPermanent) {
			t.Errorf("%s: err = %v, want ErrPermanent", name, err)
		}
	}
}

func TestSendUnreachableIsTemporary(t *testing.T) {
	k := startSink(t, sinkOptions{})
	k.Close()
	s, _ := parseURL(t, fmt.Sprintf("smtp://127.0.0.1:%d?timeout=2s", k.Port))
	err := s.Send(context.Background(), &mail.Message{To: []string{"a@example.com"}, Subject: "s", Text: "t"})
	if err == nil || errors.Is(err, mail.ErrPermanent) {
		t.Fatalf("err = %v, want a temporary error", err)
	}
}

func TestParseURLErrors(t *testing.T) {
	const pw = "TopSecretPw"
	for _, tc := range []struct{ url, want string }{
		{"http://h", "scheme"},
		{"smtp://", "missing host"},
		{"smtp://u:" + pw + "@h:99999", "invalid port"},
		{"smtp://u:" + pw + "@h:notaport", "port"},
		{"smtp://u:" + pw + "%zz@h", "percent-escape"},
		{"smtp://u:" + pw + "@h/path", "path"},
		{"smtp://u:" + pw + "@h?tls=yes", "unknown option"},
		{"smtp://h?starttls=sometimes", "starttls"},
		{"smtps://h?starttls=mandatory", "does not apply"},
		{"smtp://u:" + pw + "@h?auth=xoauth", "invalid auth"},
		{"smtp://h?auth=plain", "without a user"},
		{"smtp://h?timeout=soon", "timeout"},
		{"smtp://h?timeout=-1s", "timeout"},
		{"smtp://h?insecure_skip_verify=maybe", "insecure_skip_verify"},
		{"smtp://h?from=not-an-address", "from"},
	} {
		_, _, err := mail.ParseURL(tc.url)
		if err == nil {
			t.Errorf("%s: no error", tc.url)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %q, want it to mention %q", tc.url, err, tc.want)
		}
		if strings.Contains(err.Error(), pw) {
			t.Errorf("%s: error leaks the password: %v", tc.url, err)
		}
	}
}

func TestParseURLDefaults(t *testing.T) {
	for _, tc := range []struct{ url, from string }{
		{"smtp://mail.acme.example", "noreply@mail.acme.example"},
		{"SMTPS://mail.acme.example", "noreply@mail.acme.example"},
		{"smtp://user@mail.acme.example:587?starttls=mandatory&auth=login&timeout=5s", "noreply@mail.acme.example"},
		{"smtp://mail.acme.example?from=Acme%20%3Cno@acme.example%3E", `"Acme" <no@acme.example>`},
	} {
		_, from, err := mail.ParseURL(tc.url)
		if err != nil {
			t.Errorf("%s: %v", tc.url, err)
			continue
		}
		if from != tc.from {
			t.Errorf("%s: from %q, want %q", tc.url, from, tc.from)
		}
	}
}

func TestLogSender(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	s := mail.LogSender{Logger: zap.New(core)}
	err := s.Send(context.Background(), &mail.Message{
		To: []string{"ana@example.com"}, Subject: "Activate\nnow", ID: "m1",
		Text: "open https://app.example/activate?t=abc&code=Qx1vA8u0nW3-kZ_9sJ2hL5pR7tY4eB6cD8fG0iK2mN4", HTML: "<p>html</p>",
	})
	if err != nil {
		t.Fatal(err)
	}
	entries := logs.FilterMessage("no SMTP configured; mail not sent, logged instead").All()
	if len(entries) != 1 {
		t.Fatalf("got %d log entries", logs.Len())
	}
	f := entries[0].ContextMap()
	if f["mail_not_sent"] != true || f["id"] != "m1" || f["subject"] != "Activate now" ||
		f["text"] != "open https://app.example/activate?t=abc&code=[redacted]" {
		t.Errorf("fields = %v", f)
	}
	if to, ok := f["to"].([]any); !ok || len(to) != 1 || to[0] != "a***@example.com" {
		t.Errorf("to = %#v", f["to"])
	}
	if _, ok := f["html"]; ok {
		t.Error("html body logged")
	}
	// A nil logger must not panic.
	if err := (mail.LogSender{}).Send(context.Background(), &mail.Message{To: []string{"a@b.c"}}); err != nil {
		t.Fatal(err)
	}
}

func TestSanitizeHeader(t *testing.T) {
	for in, want := range map[string]string{
		"plain":                   "plain",
		"a\r\nb":                  "a b",
		"  a\t\tb \x00c\x7f d  ":  "a b c d",
		"line\u2028sep\u2029para": "line sep para",
		"Ünïcödé stays":           "Ünïcödé stays",
		"x\u0085y":                "x y",
		"\r\n\r\n":                "",
	} {
		if got := mail.SanitizeHeader(in); got != want {
			t.Errorf("SanitizeHeader(%q) = %q, want %q", in, got, want)
		}
	}
}
