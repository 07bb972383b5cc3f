package tests

import (
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// smtpSink is a real SMTP server (go-smtp) on a loopback port that keeps
// what it receives. Stop and Start simulate an outage on the same port.
type smtpSink struct {
	t    *testing.T
	addr string

	mu   sync.Mutex
	msgs []*received
	srv  *smtp.Server
	new  chan struct{}
}

type received struct {
	From string
	To   []string
	Raw  []byte
}

func startSMTP(t *testing.T) *smtpSink {
	t.Helper()
	s := &smtpSink{t: t, new: make(chan struct{}, 100)}
	s.Start("127.0.0.1:0")
	t.Cleanup(s.Stop)
	return s
}

// Start serves on addr ("127.0.0.1:0" the first time, the same address
// after Stop).
func (s *smtpSink) Start(addr string) {
	s.t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		s.t.Fatalf("smtp sink: %v", err)
	}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &sinkSession{sink: s}, nil
	}))
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	s.mu.Lock()
	s.srv, s.addr = srv, l.Addr().String()
	s.mu.Unlock()
	go srv.Serve(l) //nolint:errcheck // ends with Close
}

// Stop closes the server: connections are refused until Start.
func (s *smtpSink) Stop() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

// URL is the smtp:// URL of the sink.
func (s *smtpSink) URL() string { return "smtp://" + s.addr + "?from=register@example.com" }

func (s *smtpSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.msgs)
}

// waitFor waits until a message to rcpt has arrived and returns it.
func (s *smtpSink) waitFor(rcpt string, timeout time.Duration) *received {
	s.t.Helper()
	deadline := time.After(timeout)
	for {
		s.mu.Lock()
		for _, m := range s.msgs {
			for _, to := range m.To {
				if strings.EqualFold(to, rcpt) {
					s.mu.Unlock()
					return m
				}
			}
		}
		s.mu.Unlock()
		select {
		case <-s.new:
		case <-deadline:
			s.t.Fatalf("no mail to %s within %s (%d received)", rcpt, timeout, s.count())
			return nil
		}
	}
}

type sinkSession struct {
	sink *smtpSink
	from string
	to   []string
}

func (ss *sinkSession) Reset()        { ss.from, ss.to = "", nil }
func (ss *sinkSession) Logout() error { return nil }
func (ss *sinkSession) Mail(from string, _ *smtp.MailOptions) error {
	ss.from = from
	return nil
}
func (ss *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.to = append(ss.to, to)
	return nil
}
func (ss *sinkSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.sink.mu.Lock()
	ss.sink.msgs = append(ss.sink.msgs, &received{From: ss.from, To: ss.to, Raw: b})
	ss.sink.mu.Unlock()
	select {
	case ss.sink.new <- struct{}{}:
	default:
	}
	return nil
}

// parts returns the message's headers and its text and HTML bodies.
func (m *received) parts(t *testing.T) (mail.Header, string, string) {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(m.Raw))
	if err != nil {
		t.Fatalf("parse mail: %v\n%s", err, m.Raw)
	}
	var text, html string
	var walk func(ct string, body io.Reader, enc string)
	walk = func(ct string, body io.Reader, enc string) {
		mt, params, err := mime.ParseMediaType(ct)
		if err != nil {
			t.Fatalf("content type %q: %v", ct, err)
		}
		if strings.HasPrefix(mt, "multipart/") {
			mr := multipart.NewReader(body, params["boundary"])
			for {
				p, err := mr.NextPart()
				if err == io.EOF {
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				walk(p.Header.Get("Content-Type"), p, p.Header.Get("Content-Transfer-Encoding"))
			}
		}
		b := decodeBody(t, body, enc)
		switch mt {
		case "text/plain":
			text = b
		case "text/html":
			html = b
		}
	}
	walk(msg.Header.Get("Content-Type"), msg.Body, msg.Header.Get("Content-Transfer-Encoding"))
	return msg.Header, text, html
}
