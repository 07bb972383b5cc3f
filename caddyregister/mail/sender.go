// Package mail sends caddyregister's e-mail: a Sender that speaks SMTP (or
// only logs, when no SMTP server is configured), templates that render a
// message from data, and the Worker that drains the store's durable outbox.
//
// Mail is never sent from the request that caused it. A registration writes
// its messages into the outbox in the same atomic write as the user (see
// store.NewUser), and the Worker delivers them afterwards, retrying with
// backoff while the SMTP server is down and parking a message that keeps
// failing. That way a slow or broken mail server never fails or slows a
// registration, and no accepted registration loses its mail.
package mail

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	netmail "net/mail"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"

	gomail "github.com/wneessen/go-mail"
	"go.uber.org/zap"
)

// Message is one e-mail to send.
type Message struct {
	// From is the sender address, optionally with a display name
	// ("Acme <noreply@acme.example>"). Empty means the Sender's default.
	From string
	// To lists the recipients' addresses, each optionally with a display
	// name.
	To []string
	// Subject is the subject line. Line breaks and other control
	// characters are replaced with spaces before it reaches a header.
	Subject string
	// Text is the plain-text body and HTML the HTML body. With both the
	// message is multipart/alternative; at least one must be set.
	Text, HTML string
	// ID, when set, becomes the Message-ID's local part, so every retry of
	// one outbox message carries the same Message-ID and receiving systems
	// can tell a redelivery from a new message.
	ID string
}

// Sender delivers a message. Implementations must be safe for concurrent
// use.
type Sender interface {
	Send(ctx context.Context, m *Message) error
}

// ErrPermanent marks a send error that retrying cannot fix (a message with
// no recipient or an unparsable address). The Worker parks such a message at
// once instead of retrying it MaxAttempts times.
var ErrPermanent = errors.New("permanent failure")

// DefaultTimeout bounds each phase of an SMTP delivery when the URL gives no
// timeout: connecting plus greeting, TLS and AUTH share one such window and
// the transfer gets another, so a Send can take up to about twice it.
const DefaultTimeout = 30 * time.Second

// smtpSender delivers over SMTP with go-mail, one connection per message.
// A connection per message is slower than a pool but has no idle
// connection for the server to drop, and registrations send few mails.
type smtpSender struct {
	host     string
	port     int
	from     *netmail.Address
	opts     []gomail.Option
	secrets  []string // strings scrubbed from every error it returns
	endpoint string   // scheme://host:port, for error messages
}

// ParseURL builds a Sender from an SMTP URL and returns it with its default
// From address:
//
//	smtp://[user[:pass]@]host[:port][?from=addr&starttls=opportunistic|mandatory|none&auth=plain|login|cram-md5|auto&timeout=30s&insecure_skip_verify=true]
//	smtps://[user[:pass]@]host[:port][?from=addr&auth=...&timeout=...&insecure_skip_verify=true]
//
// smtp:// is a plain connection upgraded with STARTTLS when the server offers
// it (starttls=opportunistic, the default); starttls=mandatory refuses a
// server without it and starttls=none never upgrades. The port defaults to
// 25 (587 is the usual submission port). smtps:// is TLS from the first byte
// (implicit TLS), port 465 by default.
//
// file:///absolute/dir[?from=addr] writes each message into dir as an RFC
// 5322 file (<unix ns>-<message id>.eml, mode 0600, 8-bit text so a link
// reads as sent) instead of sending it: for development, where a real
// link must be followed without an SMTP server. The files hold live link
// tokens; never point it at a shared directory in production.
//
// With a user the client authenticates; auth=auto (the default) picks the
// strongest mechanism the server offers and, like plain and login, never
// sends a password in the clear except to a loopback address. User and
// password are URL-decoded, so a password with '@', ':' or '/' must be
// percent-encoded. from defaults to "noreply@<host>"; timeout defaults to
// DefaultTimeout. insecure_skip_verify=true accepts any server certificate
// and is meant only for tests and self-signed lab servers.
//
// No error from ParseURL or from the Sender's Send contains the password.
func ParseURL(rawURL string) (Sender, string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		// url.Error repeats the whole URL, password included, so only
		// its cause is kept.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		var ee url.EscapeError
		if errors.As(err, &ee) {
			// The escape it quotes may be part of the password.
			return nil, "", errors.New("mail: parse smtp url: invalid percent-escape (user and password must be URL-encoded)")
		}
		return nil, "", fmt.Errorf("mail: parse smtp url: %w", err)
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme == "file" {
		return parseFileURL(u)
	}
	if scheme != "smtp" && scheme != "smtps" {
		return nil, "", fmt.Errorf("mail: smtp url: scheme %q is not smtp or smtps", u.Scheme)
	}
	host := u.Hostname()
	if host == "" {
		return nil, "", errors.New("mail: smtp url: missing host")
	}
	if u.Path != "" && u.Path != "/" {
		return nil, "", errors.New("mail: smtp url: unexpected path")
	}
	port := 25
	if scheme == "smtps" {
		port = 465
	}
	if p := u.Port(); p != "" {
		port, err = strconv.Atoi(p)
		if err != nil || port < 1 || port > 65535 {
			return nil, "", fmt.Errorf("mail: smtp url: invalid port %q", p)
		}
	}

	q := u.Query()
	for k := range q {
		switch k {
		case "from", "starttls", "auth", "timeout", "insecure_skip_verify":
		default:
			// A misspelt option silently ignored could mean mail sent
			// without the TLS the operator asked for.
			return nil, "", fmt.Errorf("mail: smtp url: unknown option %q", k)
		}
	}

	s := &smtpSender{
		host:     host,
		port:     port,
		endpoint: scheme + "://" + net.JoinHostPort(host, strconv.Itoa(port)),
	}

	fromStr := q.Get("from")
	if fromStr == "" {
		fromStr = "noreply@" + host
	}
	s.from, err = parseAddress(fromStr)
	if err != nil {
		return nil, "", fmt.Errorf("mail: smtp url: invalid from address: %w", err)
	}

	timeout := DefaultTimeout
	if v := q.Get("timeout"); v != "" {
		timeout, err = time.ParseDuration(v)
		if err != nil || timeout <= 0 {
			return nil, "", fmt.Errorf("mail: smtp url: invalid timeout %q", v)
		}
	}

	tlsConf := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if v := q.Get("insecure_skip_verify"); v != "" {
		skip, err := strconv.ParseBool(v)
		if err != nil {
			return nil, "", fmt.Errorf("mail: smtp url: invalid insecure_skip_verify %q", v)
		}
		tlsConf.InsecureSkipVerify = skip
	}

	s.opts = []gomail.Option{
		gomail.WithPort(port),
		gomail.WithTimeout(timeout),
		gomail.WithTLSConfig(tlsConf),
	}

	starttls := strings.ToLower(q.Get("starttls"))
	if scheme == "smtps" {
		if starttls != "" {
			// STARTTLS upgrades a plain connection; smtps has none,
			// so the option would silently mean nothing.
			return nil, "", errors.New("mail: smtp url: starttls does not apply to smtps (the connection is TLS from the start)")
		}
		s.opts = append(s.opts, gomail.WithSSL(), gomail.WithTLSPolicy(gomail.NoTLS))
	} else {
		policy := gomail.TLSOpportunistic
		switch starttls {
		case "", "opportunistic":
		case "mandatory":
			policy = gomail.TLSMandatory
		case "none":
			policy = gomail.NoTLS
		default:
			return nil, "", fmt.Errorf("mail: smtp url: invalid starttls %q (want opportunistic, mandatory or none)", starttls)
		}
		s.opts = append(s.opts, gomail.WithTLSPolicy(policy))
	}

	authStr := strings.ToLower(q.Get("auth"))
	if u.User != nil && u.User.Username() != "" {
		user := u.User.Username()
		pass, _ := u.User.Password()
		var authType gomail.SMTPAuthType
		switch authStr {
		case "", "auto":
			authType = gomail.SMTPAuthAutoDiscover
		case "plain":
			authType = gomail.SMTPAuthPlain
		case "login":
			authType = gomail.SMTPAuthLogin
		case "cram-md5":
			authType = gomail.SMTPAuthCramMD5
		default:
			return nil, "", fmt.Errorf("mail: smtp url: invalid auth %q (want plain, login, cram-md5 or auto)", authStr)
		}
		s.opts = append(s.opts,
			gomail.WithSMTPAuth(authType),
			gomail.WithUsername(user),
			gomail.WithPassword(pass),
		)
		if pass != "" {
			// A hostile or chatty server could echo what it got; the
			// PLAIN blob is the base64 form it would echo.
			s.secrets = append(s.secrets,
				pass,
				base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00"+pass)),
				base64.StdEncoding.EncodeToString([]byte(pass)),
			)
		}
	} else if authStr != "" {
		return nil, "", errors.New("mail: smtp url: auth given without a user")
	}

	return s, formatAddress(s.from), nil
}

// formatAddress is a.String() without the angle brackets when there is no
// display name, the form people write in configuration.
func formatAddress(a *netmail.Address) string {
	if a.Name == "" {
		return a.Address
	}
	return a.String()
}

// Send delivers m over a fresh connection. ctx bounds the connection
// attempt; once connected, each phase is bounded by the URL's timeout
// instead, since go-mail cannot abort a conversation in progress.
func (s *smtpSender) Send(ctx context.Context, m *Message) error {
	msg, err := buildMsg(m, s.from)
	if err != nil {
		return err
	}
	c, err := gomail.NewClient(s.host, s.opts...)
	if err != nil {
		return s.wrap(err)
	}
	if err := c.DialAndSendWithContext(ctx, msg); err != nil {
		return s.wrap(err)
	}
	return nil
}

// buildMsg turns m into a go-mail message, From defaultFrom unless m
// says otherwise. Every header value that came from
// data (subject, display names) is cleaned of control characters first, so
// a CR/LF in a user's name or a template can never start a new header.
func buildMsg(m *Message, defaultFrom *netmail.Address, opts ...gomail.MsgOption) (*gomail.Msg, error) {
	if m == nil {
		return nil, fmt.Errorf("mail: nil message: %w", ErrPermanent)
	}
	if len(m.To) == 0 {
		return nil, fmt.Errorf("mail: message has no recipient: %w", ErrPermanent)
	}
	if m.Text == "" && m.HTML == "" {
		return nil, fmt.Errorf("mail: message has no body: %w", ErrPermanent)
	}
	msg := gomail.NewMsg(append([]gomail.MsgOption{gomail.WithNoDefaultUserAgent()}, opts...)...)

	from := defaultFrom
	if m.From != "" {
		a, err := parseAddress(m.From)
		if err != nil {
			return nil, fmt.Errorf("mail: invalid from address: %w: %w", err, ErrPermanent)
		}
		from = a
	}
	msg.FromMailAddress(from)

	to := make([]*netmail.Address, 0, len(m.To))
	for _, r := range m.To {
		a, err := parseAddress(r)
		if err != nil {
			return nil, fmt.Errorf("mail: invalid recipient address: %w: %w", err, ErrPermanent)
		}
		to = append(to, a)
	}
	msg.ToMailAddress(to...)

	msg.Subject(SanitizeHeader(m.Subject))
	msg.SetDate()
	if id := messageIDPart(m.ID); id != "" {
		msg.SetMessageIDWithValue(id + "@" + domainOf(from.Address))
	} else {
		msg.SetMessageID()
	}

	switch {
	case m.Text != "" && m.HTML != "":
		msg.SetBodyString(gomail.TypeTextPlain, m.Text)
		msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	case m.HTML != "":
		msg.SetBodyString(gomail.TypeTextHTML, m.HTML)
	default:
		msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	}
	return msg, nil
}

// wrap prefixes err with the server it concerns and scrubs the password out
// of its text. When something had to be scrubbed the cause is dropped, not
// wrapped, so no caller can reach the secret through errors.Unwrap.
func (s *smtpSender) wrap(err error) error {
	msg := err.Error()
	scrubbed := msg
	for _, sec := range s.secrets {
		if sec != "" {
			scrubbed = strings.ReplaceAll(scrubbed, sec, "[redacted]")
		}
	}
	if scrubbed != msg {
		return fmt.Errorf("mail: send via %s: %s", s.endpoint, scrubbed)
	}
	return fmt.Errorf("mail: send via %s: %w", s.endpoint, err)
}

// SanitizeHeader makes s safe and tidy for a single header line: line
// breaks, tabs and every other control or line/paragraph separator
// character become spaces, runs of spaces collapse and the ends are
// trimmed. Without it, a CR/LF in user data could append headers (a Bcc:,
// say) to the message.
func SanitizeHeader(s string) string {
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool {
		return unicode.IsControl(r) || unicode.IsSpace(r) ||
			unicode.Is(unicode.Zl, r) || unicode.Is(unicode.Zp, r)
	}), " ")
}

// parseAddress parses "addr" or "Name <addr>" after sanitizing it. A
// display name that RFC 5322 would need quoted (a user's "Smith, J." or
// what is left of an injection attempt) is accepted as a plain name, since
// go-mail quotes or encodes it when writing the header.
func parseAddress(s string) (*netmail.Address, error) {
	s = SanitizeHeader(s)
	if s == "" {
		return nil, errors.New("empty address")
	}
	if a, err := netmail.ParseAddress(s); err == nil {
		return a, nil
	}
	i := strings.LastIndexByte(s, '<')
	if i < 0 || !strings.HasSuffix(s, ">") {
		return nil, fmt.Errorf("cannot parse %q", s)
	}
	a, err := netmail.ParseAddress(s[i+1 : len(s)-1])
	if err != nil {
		return nil, fmt.Errorf("cannot parse %q", s)
	}
	a.Name = strings.Trim(strings.TrimSpace(s[:i]), `"`)
	return a, nil
}

// messageIDPart keeps only the characters RFC 5322 allows unquoted in a
// Message-ID's local part, so an outbox id cannot break the header.
func messageIDPart(id string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			return r
		case strings.ContainsRune(".-_+=", r):
			return r
		}
		return -1
	}, id)
}

// domainOf returns the part after the last '@', or "localhost".
func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 && i < len(addr)-1 {
		return addr[i+1:]
	}
	return "localhost"
}

// LogSender "sends" mail by writing it to the log. It is what runs when no
// SMTP server is configured, so that development setups work and a
// misconfigured production is visible rather than silent.
//
// Logs never carry secrets: recipients are masked, and anything in the body
// that looks like a token (UUIDs, long base64url runs such as the 256-bit
// link tokens) is replaced by "[redacted]". The log shows that a mail would
// have gone out and what it said; to follow its link, configure SMTP (any
// local sink will do). The HTML body is not logged, since it repeats the
// text.
type LogSender struct {
	Logger *zap.Logger
}

// secretLike matches what tokens look like in mail bodies.
var secretLike = regexp.MustCompile(`[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[A-Za-z0-9_-]{22,}`)

// Redact replaces token-like substrings of s with "[redacted]".
func Redact(s string) string { return secretLike.ReplaceAllString(s, "[redacted]") }

// maskAddress keeps the first character and the domain of an address.
func maskAddress(a string) string {
	at := strings.LastIndexByte(a, '@')
	if at <= 0 {
		return "***"
	}
	r := []rune(a[:at])
	return string(r[0]) + "***" + a[at:]
}

// Send logs m at Warn level with mail_not_sent=true and returns nil, so the
// outbox treats the message as delivered.
func (l LogSender) Send(_ context.Context, m *Message) error {
	if m == nil {
		return fmt.Errorf("mail: nil message: %w", ErrPermanent)
	}
	lg := l.Logger
	if lg == nil {
		lg = zap.NewNop()
	}
	to := make([]string, len(m.To))
	for i, a := range m.To {
		to[i] = maskAddress(a)
	}
	lg.Warn("no SMTP configured; mail not sent, logged instead",
		zap.Bool("mail_not_sent", true),
		zap.String("id", m.ID),
		zap.Strings("to", to),
		zap.String("subject", Redact(SanitizeHeader(m.Subject))),
		zap.String("text", Redact(m.Text)),
	)
	return nil
}
