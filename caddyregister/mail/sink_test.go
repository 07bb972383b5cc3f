package mail_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// sink is a real SMTP server (github.com/emersion/go-smtp) on loopback that
// keeps every message it accepts, so tests check what actually went over
// the wire rather than what a mock was handed.
type sink struct {
	Addr string
	Port int

	srv *smtp.Server
	l   net.Listener

	mu   sync.Mutex
	msgs []received
}

// received is one accepted message.
type received struct {
	From     string
	To       []string
	Raw      []byte
	AuthUser string // who authenticated, "" when nobody did
	TLS      bool   // whether the session ran over TLS
}

type sinkOptions struct {
	// Addr to listen on; "" picks a free loopback port. A sink restarted
	// on the address of a closed one simulates an SMTP outage ending.
	Addr string
	// User and Pass, when set, make the sink offer AUTH PLAIN and refuse
	// mail from unauthenticated sessions.
	User, Pass string
	// EchoAuthError makes failed AUTH answer with the password it was
	// given, as a hostile or careless server might.
	EchoAuthError bool
	// StartTLS offers STARTTLS with a self-signed certificate.
	StartTLS bool
	// ImplicitTLS serves TLS from the first byte (smtps).
	ImplicitTLS bool
}

func startSink(t testing.TB, o sinkOptions) *sink {
	t.Helper()
	s := &sink{}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		base := &session{sink: s, conn: c, opts: o}
		if o.User != "" {
			return &authSession{base}, nil
		}
		return base, nil
	}))
	srv.Domain = "sink.test"
	srv.AllowInsecureAuth = true // AUTH over plain TCP, fine on loopback
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	srv.MaxMessageBytes = 1 << 20
	srv.ErrorLog = log.New(io.Discard, "", 0)
	var tlsConf *tls.Config
	if o.StartTLS || o.ImplicitTLS {
		tlsConf = selfSignedTLS(t)
	}
	if o.StartTLS {
		srv.TLSConfig = tlsConf
	}
	addr := o.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var l net.Listener
	var err error
	// A just-closed port can take a moment to be free again.
	for i := 0; i < 50; i++ {
		if l, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("sink listen: %v", err)
	}
	if o.ImplicitTLS {
		l = tls.NewListener(l, tlsConf)
	}
	s.srv, s.l = srv, l
	s.Addr = l.Addr().String()
	_, p, _ := net.SplitHostPort(s.Addr)
	s.Port, _ = strconv.Atoi(p)
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(s.Close)
	return s
}

// Close stops the sink; connections in progress are cut. Safe to repeat.
func (s *sink) Close() {
	// Closing the listener too covers a Close that races Serve's start,
	// before the server has registered the listener.
	_ = s.l.Close()
	_ = s.srv.Close()
}

// Messages returns a copy of what the sink accepted so far.
func (s *sink) Messages() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.msgs...)
}

type session struct {
	sink     *sink
	conn     *smtp.Conn
	opts     sinkOptions
	authUser string
	from     string
	to       []string
}

func (s *session) Reset()        { s.from, s.to = "", nil }
func (s *session) Logout() error { return nil }

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if s.opts.User != "" && s.authUser == "" {
		return smtp.ErrAuthRequired
	}
	s.from = from
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	_, isTLS := s.conn.TLSConnectionState()
	s.sink.mu.Lock()
	s.sink.msgs = append(s.sink.msgs, received{
		From: s.from, To: append([]string(nil), s.to...), Raw: b,
		AuthUser: s.authUser, TLS: isTLS,
	})
	s.sink.mu.Unlock()
	return nil
}

// authSession adds AUTH PLAIN to session; go-smtp offers AUTH only to
// sessions that implement smtp.AuthSession.
type authSession struct{ *session }

func (s *authSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *authSession) Auth(mech string) (sasl.Server, error) {
	if mech != sasl.Plain {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user == s.opts.User && pass == s.opts.Pass {
			s.authUser = user
			return nil
		}
		if s.opts.EchoAuthError {
			return errors.New("bad credentials " + user + ":" + pass)
		}
		return smtp.ErrAuthFailed
	}), nil
}

// selfSignedTLS makes a throwaway certificate for 127.0.0.1 and localhost.
func selfSignedTLS(t testing.TB) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "sink.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		MinVersion:   tls.VersionTLS12,
	}
}
