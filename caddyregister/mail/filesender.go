package mail

import (
	"context"
	"errors"
	"fmt"
	netmail "net/mail"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// fileSender writes messages into a directory instead of sending them
// (ParseURL's file:// form): go-mail builds each one exactly as it would
// go over SMTP, only 8-bit instead of quoted-printable, so a link in it can
// be copied as it stands.
type fileSender struct {
	dir  string
	from *netmail.Address
	now  func() time.Time
}

func parseFileURL(u *url.URL) (Sender, string, error) {
	if u.Host != "" && u.Host != "localhost" {
		return nil, "", fmt.Errorf("mail: file url: host %q: want file:///absolute/dir", u.Host)
	}
	if u.User != nil {
		return nil, "", errors.New("mail: file url: unexpected user")
	}
	if !filepath.IsAbs(u.Path) {
		return nil, "", fmt.Errorf("mail: file url: path %q is not absolute", u.Path)
	}
	q := u.Query()
	for k := range q {
		if k != "from" {
			return nil, "", fmt.Errorf("mail: file url: unknown option %q", k)
		}
	}
	fromStr := q.Get("from")
	if fromStr == "" {
		fromStr = "noreply@localhost"
	}
	from, err := parseAddress(fromStr)
	if err != nil {
		return nil, "", fmt.Errorf("mail: file url: invalid from address: %w", err)
	}
	return &fileSender{dir: filepath.Clean(u.Path), from: from, now: time.Now}, formatAddress(from), nil
}

// Send writes m to a temporary name and renames it into place, so a
// reader never sees half a message.
func (f *fileSender) Send(_ context.Context, m *Message) error {
	msg, err := buildMsg(m, f.from, gomail.WithEncoding(gomail.NoEncoding))
	if err != nil {
		return err
	}
	if err := os.MkdirAll(f.dir, 0o700); err != nil {
		return fmt.Errorf("mail: file sender: %w", err)
	}
	name := strconv.FormatInt(f.now().UnixNano(), 10)
	if id := messageIDPart(m.ID); id != "" {
		name += "-" + id
	}
	tmp, err := os.CreateTemp(f.dir, ".writing-*")
	if err != nil {
		return fmt.Errorf("mail: file sender: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a failure; a no-op once renamed
	if _, err := msg.WriteTo(tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("mail: file sender: write: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("mail: file sender: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(f.dir, name+".eml")); err != nil {
		return fmt.Errorf("mail: file sender: %w", err)
	}
	return nil
}
