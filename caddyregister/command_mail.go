package caddyregister

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// `caddy register mail list|retry`: the parked messages (mails and webhook
// events the worker gave up on), and sending them again.

// addMailCommands adds the mail subcommands to the register command.
func addMailCommands(cmd *cobra.Command) {
	m := &cobra.Command{Use: "mail", Short: "Lists and retries parked mails and webhook events"}
	list := &cobra.Command{
		Use:   "list [--limit <n>] [--cursor <c>] [--json]",
		Short: "Lists parked messages, oldest first",
		Args:  cobra.NoArgs,
		RunE:  caddycmd.WrapCommandFuncForCobra(userCommand(cmdMailList)),
	}
	list.Flags().Int("limit", 50, fmt.Sprintf("Messages per page (1..%d)", store.MaxParkedPage))
	list.Flags().String("cursor", "", "Continue after the page that printed this cursor")
	retry := &cobra.Command{
		Use:   "retry <id>… | --all",
		Short: "Queues parked messages again, due now, with a fresh count of attempts",
		RunE:  caddycmd.WrapCommandFuncForCobra(userCommand(cmdMailRetry)),
	}
	retry.Flags().Bool("all", false, "Retry every parked message that still has its body")
	for _, c := range []*cobra.Command{list, retry} {
		c.Flags().Bool("json", false, "Print JSON instead of aligned text")
		m.AddCommand(c)
	}
	cmd.AddCommand(m)
}

// parkedStore is the app's store as the parked set's operator sees it.
func parkedStore(a *App) (store.ParkedMails, error) {
	st, err := rawStore(a)
	if err != nil {
		return nil, err
	}
	p, ok := st.(store.ParkedMails)
	if !ok {
		return nil, errors.New("this store cannot list parked messages yet")
	}
	return p, nil
}

// rawStore is the app's store itself: the embedded file (not the stand-in
// Caddy starts with), or Redis.
func rawStore(a *App) (store.Store, error) {
	if a.deferred != nil {
		return a.deferred.get()
	}
	return a.Engine().Store(), nil
}

// parkedView is what the commands print of a parked message (never its
// body: a link in it is a live secret).
type parkedView struct {
	ID        string    `json:"id"`
	Kind      string    `json:"kind"`
	To        []string  `json:"to"`
	What      string    `json:"what"`
	UserID    string    `json:"user_id,omitempty"`
	Attempts  int       `json:"attempts"`
	LastError string    `json:"last_error,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	HasBody   bool      `json:"has_body"`
}

func parkedViewOf(m *store.Mail) parkedView {
	v := parkedView{ID: m.ID, Kind: "mail", To: m.To, What: m.Subject, UserID: m.UserID, Attempts: m.Attempts,
		LastError: m.LastError, CreatedAt: m.CreatedAt.UTC(), HasBody: m.HasBody()}
	if m.Kind == store.KindWebhook {
		v.Kind, v.What = "webhook", m.Event
	}
	return v
}

func cmdMailList(ctx context.Context, out io.Writer, a *App, fl caddycmd.Flags, _ []string) error {
	p, err := parkedStore(a)
	if err != nil {
		return fmt.Errorf("mail list: %w", err)
	}
	ms, next, err := p.ParkedMails(ctx, fl.String("cursor"), fl.Int("limit"))
	if err != nil {
		return fmt.Errorf("mail list: %w", err)
	}
	views := make([]parkedView, 0, len(ms))
	for _, m := range ms {
		views = append(views, parkedViewOf(m))
	}
	if fl.Bool("json") {
		var nc *string
		if next != "" {
			nc = &next
		}
		return printJSON(out, struct {
			Parked     []parkedView `json:"parked"`
			NextCursor *string      `json:"next_cursor"`
		}{views, nc})
	}
	rows := make([][]string, 0, len(views))
	for _, v := range views {
		to := ""
		if len(v.To) > 0 {
			to = v.To[0]
		}
		body := "yes"
		if !v.HasBody {
			body = "dropped"
		}
		rows = append(rows, []string{v.ID, v.Kind, orDash(to), orDash(v.What), strconv.Itoa(v.Attempts), body, orDash(v.LastError)})
	}
	if err := table(out, []string{"ID", "KIND", "TO", "SUBJECT/EVENT", "ATTEMPTS", "BODY", "LAST ERROR"}, rows); err != nil {
		return err
	}
	if next != "" {
		fmt.Fprintf(out, "more: --cursor %s\n", next)
	}
	return nil
}

func cmdMailRetry(ctx context.Context, out io.Writer, a *App, fl caddycmd.Flags, args []string) error {
	all := fl.Bool("all")
	if all == (len(args) > 0) {
		return errors.New("mail retry: name the messages (ids from `caddy register mail list`) or pass --all")
	}
	p, err := parkedStore(a)
	if err != nil {
		return fmt.Errorf("mail retry: %w", err)
	}
	var ms []*store.Mail
	if all {
		for cursor := ""; ; {
			page, next, err := p.ParkedMails(ctx, cursor, store.MaxParkedPage)
			if err != nil {
				return fmt.Errorf("mail retry: %w", err)
			}
			ms = append(ms, page...)
			if next == "" {
				break
			}
			cursor = next
		}
	} else {
		for _, id := range args {
			m, err := p.GetMail(ctx, id)
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("mail retry: no message %s (sent, erased with its user, or never queued)", id)
			}
			if err != nil {
				return fmt.Errorf("mail retry: %w", err)
			}
			ms = append(ms, m)
		}
	}
	st := a.Engine().Store()
	now := time.Now().UTC()
	var retried, skipped []string
	for _, m := range ms {
		if !m.HasBody() {
			// Its link expired and the body went with it: sending the
			// subject alone helps no one.
			skipped = append(skipped, m.ID)
			continue
		}
		m.Attempts, m.LastError, m.NextAttempt = 0, "", now
		if err := st.RetryMail(ctx, m); errors.Is(err, store.ErrNotFound) {
			skipped = append(skipped, m.ID) // sent or erased meanwhile
			continue
		} else if err != nil {
			return fmt.Errorf("mail retry %s: %w", m.ID, err)
		}
		retried = append(retried, m.ID)
	}
	if fl.Bool("json") {
		return printJSON(out, map[string][]string{"retried": nonNil(retried), "skipped": nonNil(skipped)})
	}
	fmt.Fprintf(out, "%d message(s) queued again, due now\n", len(retried))
	if len(skipped) > 0 {
		fmt.Fprintf(out, "%d skipped (body dropped after its link expired, or gone meanwhile): %v\n", len(skipped), skipped)
	}
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
