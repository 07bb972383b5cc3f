package caddyregister

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
	bolterrors "go.etcd.io/bbolt/errors"
	"go.uber.org/zap"

	"github.com/caddyregister/caddyregister/caddyregister/engine"
	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// The operator commands on users and sessions: `caddy register users …`
// and `caddy register sessions …`. They provision the register app from
// the config Caddy runs with, as Caddy does, and act through its engine:
// the same rules as the admin API (a disable revokes sessions and is
// published to every instance; an erasure is the atomic DeleteUser), and
// the same webhooks queued in the same atomic steps.

// addOperatorCommands adds the users, sessions and mail subcommands to the
// register command.
func addOperatorCommands(cmd *cobra.Command) {
	addUserCommands(cmd)
	addMailCommands(cmd)
	addPortCommands(cmd)
}

// addUserCommands adds the users and sessions subcommands to the register
// command.
func addUserCommands(cmd *cobra.Command) {
	users := &cobra.Command{Use: "users", Short: "Lists, shows, activates, disables and deletes users"}
	list := &cobra.Command{
		Use:   "list [--status pending|active|inactive] [--tenant <id>] [--email <prefix>] [--limit <n>] [--cursor <c>] [--json]",
		Short: "Lists users in creation order, a page at a time",
		Args:  cobra.NoArgs,
		RunE:  caddycmd.WrapCommandFuncForCobra(userCommand(cmdUsersList)),
	}
	list.Flags().String("status", "", "Only users with this status")
	list.Flags().String("tenant", "", "Only users of this tenant (id)")
	list.Flags().String("email", "", "Only users whose e-mail starts with this")
	list.Flags().Int("limit", 50, fmt.Sprintf("Users per page (1..%d)", store.MaxUserPage))
	list.Flags().String("cursor", "", "Continue after the page that printed this cursor")
	users.AddCommand(list)
	for _, c := range []struct {
		use, short string
		run        commandFunc
	}{
		{"show <id|email|login> [--json]", "Shows one user and its sessions", cmdUsersShow},
		{"activate <id|email|login>", "Activates a user (a pending one, or one disabled)", cmdUsersActivate},
		{"disable <id|email|login>", "Disables a user and ends every session of it", cmdUsersDisable},
		{"delete <id|email|login>", "Erases a user: record, indexes, sessions, links, queued mail", cmdUsersDelete},
	} {
		users.AddCommand(&cobra.Command{Use: c.use, Short: c.short, Args: cobra.ExactArgs(1),
			RunE: caddycmd.WrapCommandFuncForCobra(userCommand(c.run))})
	}
	sessions := &cobra.Command{Use: "sessions", Short: "Ends users' sessions"}
	revoke := &cobra.Command{
		Use:   "revoke <id|email|login> [--sid <sid>]",
		Short: "Ends every session of a user, or the one --sid names",
		Args:  cobra.ExactArgs(1),
		RunE:  caddycmd.WrapCommandFuncForCobra(userCommand(cmdSessionsRevoke)),
	}
	revoke.Flags().String("sid", "", "End only this session")
	sessions.AddCommand(revoke)
	for _, c := range []*cobra.Command{users, sessions} {
		for _, sub := range c.Commands() {
			sub.Flags().Bool("json", false, "Print JSON instead of aligned text")
		}
		cmd.AddCommand(c)
	}
}

// commandOut is where the commands print (tests capture it).
var commandOut io.Writer = os.Stdout

// commandFunc is a subcommand run on the provisioned app.
type commandFunc func(context.Context, io.Writer, *App, caddycmd.Flags, []string) error

// userCommand runs f on the provisioned app, with a deadline, the
// subcommand's flags and its arguments.
func userCommand(f commandFunc) caddycmd.CommandFunc {
	return appCommand(func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), 30*time.Second)
	}, "", f)
}

// appCommand runs f on the app the config provisions, in the context
// start makes, with the subcommand's flags and arguments. locked, when
// set, replaces what a held embedded file tells the operator to do.
func appCommand(start func() (context.Context, context.CancelFunc), locked string, f commandFunc) caddycmd.CommandFunc {
	return func(fl caddycmd.Flags) (int, error) {
		ctx, cancel := start()
		defer cancel()
		a, done, err := commandApp(ctx, fl.String("config"), fl.String("adapter"))
		var le *lockedError
		if locked != "" && errors.As(err, &le) {
			le.hint = locked
		}
		if err != nil {
			return caddy.ExitCodeFailedStartup, err
		}
		defer done()
		if err := f(ctx, commandOut, a, fl, fl.Args()); err != nil {
			return caddy.ExitCodeFailedQuit, err
		}
		return caddy.ExitCodeSuccess, nil
	}
}

// commandApp provisions the register app of the config Caddy runs with, as
// Caddy would, and opens its store; done releases it. The embedded file
// can be open in one process only: while Caddy runs, the command says to
// stop it or to use the admin API.
func commandApp(ctx context.Context, configFile, adapter string) (*App, func(), error) {
	a, err := loadAppConfig(configFile, adapter)
	if err != nil {
		return nil, nil, err
	}
	// The command reports what it did; of the app's own log only errors
	// matter here (what Caddy would warn about at start is no news).
	lc := zap.NewProductionConfig()
	lc.Level = zap.NewAtomicLevelAt(zap.ErrorLevel)
	lc.Encoding, lc.DisableStacktrace, lc.DisableCaller = "console", true, true
	if a.logger, err = lc.Build(); err != nil {
		return nil, nil, err
	}
	cctx, cancel := caddy.NewContext(caddy.Context{Context: ctx})
	if err := a.Provision(cctx); err != nil {
		cancel()
		return nil, nil, err
	}
	done := func() {
		_ = a.Cleanup()
		cancel()
	}
	if a.deferred != nil {
		if err := a.openEmbedded(); err != nil {
			done()
			if errors.Is(err, bolterrors.ErrTimeout) {
				return nil, nil, &lockedError{path: a.embeddedPath, hint: lockedHint}
			}
			return nil, nil, err
		}
	}
	return a, done, nil
}

// lockedError is commandApp's answer when a running Caddy holds the
// embedded file: what to do instead is hint, the user commands' unless
// the command says otherwise (appCommand).
type lockedError struct{ path, hint string }

// lockedHint is what the user commands tell an operator whose Caddy holds
// the embedded file.
const lockedHint = "stop it and run the command again, " +
	"or use that instance's admin API (GET/PATCH/DELETE /account/users/{id}, POST /account/users/{id}/logout)"

func (e *lockedError) Error() string {
	return fmt.Sprintf("embedded store %s is locked by a running Caddy: %s", e.path, e.hint)
}

// userView is what the commands print of a user (never the hash).
type userView struct {
	ID               string    `json:"id"`
	Email            string    `json:"email"`
	Login            string    `json:"login,omitempty"`
	Name             string    `json:"name,omitempty"`
	Status           string    `json:"status"`
	Tenant           string    `json:"tenant,omitempty"`
	Permissions      []string  `json:"permissions"`
	AdminPermissions []string  `json:"admin_permissions,omitempty"`
	Contract         string    `json:"contract"`
	CreatedAt        time.Time `json:"created_at"`
	UpdatedAt        time.Time `json:"updated_at"`
}

func viewOf(u *store.User) userView {
	return userView{ID: u.ID, Email: u.Email, Login: u.Login, Name: u.Name, Status: string(u.Status), Tenant: u.TenantID,
		Permissions: u.Permissions, AdminPermissions: u.AdminPermissions, Contract: u.Contract,
		CreatedAt: u.CreatedAt.UTC(), UpdatedAt: u.UpdatedAt.UTC()}
}

func printJSON(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table prints rows aligned in columns under a header.
func table(out io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func cmdUsersList(ctx context.Context, out io.Writer, a *App, fl caddycmd.Flags, _ []string) error {
	page, err := a.Engine().ListUsers(ctx, engine.UserQuery{Status: fl.String("status"), TenantID: fl.String("tenant"),
		EmailPrefix: fl.String("email"), Limit: fl.Int("limit"), Cursor: fl.String("cursor")})
	if err != nil {
		return fmt.Errorf("users list: %w", err)
	}
	views := make([]userView, 0, len(page.Users))
	for _, u := range page.Users {
		views = append(views, viewOf(u))
	}
	if fl.Bool("json") {
		var next *string
		if page.Next != "" {
			next = &page.Next
		}
		return printJSON(out, struct {
			Users      []userView `json:"users"`
			NextCursor *string    `json:"next_cursor"`
		}{views, next})
	}
	rows := make([][]string, 0, len(views))
	for _, v := range views {
		rows = append(rows, []string{v.ID, v.Email, orDash(v.Login), v.Status, orDash(v.Tenant), v.CreatedAt.Format(time.RFC3339)})
	}
	if err := table(out, []string{"ID", "EMAIL", "LOGIN", "STATUS", "TENANT", "CREATED"}, rows); err != nil {
		return err
	}
	if page.Next != "" {
		fmt.Fprintf(out, "more: --cursor %s\n", page.Next)
	}
	return nil
}

// lookup resolves an operator's reference to a user.
func lookup(ctx context.Context, a *App, ref string) (*store.User, error) {
	u, err := a.Engine().LookupUser(ctx, ref)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("no user with id, e-mail or login %q", ref)
	}
	return u, err
}

func cmdUsersShow(ctx context.Context, out io.Writer, a *App, fl caddycmd.Flags, args []string) error {
	u, err := lookup(ctx, a, args[0])
	if err != nil {
		return err
	}
	sessions, err := a.Engine().ListSessions(ctx, u.ID)
	if err != nil {
		return fmt.Errorf("users show: sessions: %w", err)
	}
	type sessionView struct {
		ID        string    `json:"id"`
		CreatedAt time.Time `json:"created_at"`
		LastUsed  time.Time `json:"last_used_at"`
		ClientIP  string    `json:"client_ip"`
		UserAgent string    `json:"user_agent,omitempty"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	sv := make([]sessionView, 0, len(sessions))
	for _, s := range sessions {
		sv = append(sv, sessionView{s.ID, s.CreatedAt.UTC(), s.LastUsedAt.UTC(), s.ClientIP, s.UserAgent, s.IdleExpiresAt.UTC()})
	}
	if fl.Bool("json") {
		return printJSON(out, struct {
			userView
			Sessions []sessionView `json:"sessions"`
		}{viewOf(u), sv})
	}
	v := viewOf(u)
	fields := [][]string{{"id", v.ID}, {"email", v.Email}, {"login", orDash(v.Login)}, {"name", orDash(v.Name)},
		{"status", v.Status}, {"tenant", orDash(v.Tenant)}, {"permissions", orDash(strings.Join(v.Permissions, ","))},
		{"admin permissions", orDash(strings.Join(v.AdminPermissions, ","))}, {"contract", v.Contract},
		{"created", v.CreatedAt.Format(time.RFC3339)}, {"updated", v.UpdatedAt.Format(time.RFC3339)},
		{"sessions", fmt.Sprint(len(sv))}}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	for _, f := range fields {
		fmt.Fprintf(tw, "%s:\t%s\n", f[0], f[1])
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(sv) == 0 {
		return nil
	}
	fmt.Fprintln(out)
	rows := make([][]string, 0, len(sv))
	for _, s := range sv {
		rows = append(rows, []string{s.ID, s.ClientIP, s.LastUsed.Format(time.RFC3339), s.ExpiresAt.Format(time.RFC3339), orDash(s.UserAgent)})
	}
	return table(out, []string{"SESSION", "CLIENT IP", "LAST USED", "IDLE UNTIL", "USER AGENT"}, rows)
}

// setStatus is activate and disable: UpdateUser, as PATCH /account/users
// does it.
func setStatus(ctx context.Context, out io.Writer, a *App, fl caddycmd.Flags, ref string, status store.Status) error {
	u, err := lookup(ctx, a, ref)
	if err != nil {
		return err
	}
	st := string(status)
	nu, err := a.Engine().UpdateUser(ctx, u.ID, engine.UserUpdate{Status: &st})
	if err != nil && nu == nil {
		return fmt.Errorf("users %s: %w", verbOf(status), err)
	}
	if fl.Bool("json") {
		if perr := printJSON(out, viewOf(nu)); perr != nil {
			return perr
		}
	} else {
		fmt.Fprintf(out, "user %s (%s) is %s\n", nu.ID, nu.Email, nu.Status)
	}
	if err != nil {
		// Stored, but the sessions' revocation failed: say so.
		return fmt.Errorf("users %s: the status is stored, but: %w", verbOf(status), err)
	}
	return nil
}

func verbOf(s store.Status) string {
	if s == store.StatusActive {
		return "activate"
	}
	return "disable"
}

func cmdUsersActivate(ctx context.Context, out io.Writer, a *App, fl caddycmd.Flags, args []string) error {
	return setStatus(ctx, out, a, fl, args[0], store.StatusActive)
}

func cmdUsersDisable(ctx context.Context, out io.Writer, a *App, fl caddycmd.Flags, args []string) error {
	return setStatus(ctx, out, a, fl, args[0], store.StatusInactive)
}

func cmdUsersDelete(ctx context.Context, out io.Writer, a *App, fl caddycmd.Flags, args []string) error {
	u, err := lookup(ctx, a, args[0])
	if err != nil {
		return err
	}
	if err := a.Engine().DeleteUser(ctx, u.ID); err != nil {
		return fmt.Errorf("users delete: %w", err)
	}
	if fl.Bool("json") {
		return printJSON(out, map[string]any{"deleted": u.ID, "email": u.Email})
	}
	fmt.Fprintf(out, "user %s (%s) erased\n", u.ID, u.Email)
	return nil
}

func cmdSessionsRevoke(ctx context.Context, out io.Writer, a *App, fl caddycmd.Flags, args []string) error {
	u, err := lookup(ctx, a, args[0])
	if err != nil {
		return err
	}
	var ended []string
	if sid := fl.String("sid"); sid != "" {
		if err := a.Engine().Logout(ctx, u.ID, sid); errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("sessions revoke: user %s has no live session %s (see: caddy register users show %s)", u.ID, sid, u.ID)
		} else if err != nil {
			return fmt.Errorf("sessions revoke: %w", err)
		}
		ended = []string{sid}
	} else if ended, err = a.Engine().RevokeUserSessions(ctx, u.ID, ""); err != nil {
		return fmt.Errorf("sessions revoke: %w", err)
	}
	if ended == nil {
		ended = []string{}
	}
	if fl.Bool("json") {
		return printJSON(out, map[string]any{"user": u.ID, "sessions_ended": ended})
	}
	fmt.Fprintf(out, "%d session(s) of user %s (%s) ended\n", len(ended), u.ID, u.Email)
	return nil
}
