package caddyregister

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/caddyregister/caddyregister/caddyregister/engine"
	"github.com/caddyregister/caddyregister/caddyregister/store"
	"github.com/caddyregister/caddyregister/caddyregister/store/boltstore"
	"github.com/caddyregister/caddyregister/caddyregister/store/redisstore"
	"github.com/caddyregister/caddyregister/caddyregister/token"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "register",
		Usage: "users|sessions|mail|rotate-key|export|import … [--config <path>] [--adapter <name>]",
		Short: "Operator commands for the register app's store",
		Long: `
Operator commands that work on the register app's store directly. They read
the same config Caddy runs with (--config, --adapter; default ./Caddyfile)
to find the store: Redis (while Caddy runs), or the embedded file (only while
no Caddy holds it open).

Subcommands (each with --json for machine-readable output where it prints):

users list [--status s] [--tenant id] [--email prefix] [--limit n] [--cursor c]
users show|activate|disable|delete <id|email|login>
    What the admin API's /account/users routes do, through the same engine:
    a disable ends every session of the user on every instance, a delete
    erases the user in one atomic step, and webhooks are queued as usual.

sessions revoke <id|email|login> [--sid sid]
    Ends every session of a user, or one.

mail list [--limit n] [--cursor c]
mail retry <id>... | --all
    The parked messages (mails and webhook events the worker gave up on),
    and queueing them again, due now.

export [--output file]
import [--input file]
    Moves every record of one store to another as JSON lines (from the
    embedded file to Redis, say): export | import, idempotent when rerun,
    counts checked at the end.

rotate-key
    Replaces the generated signing key with a new one. The old key stays in
    the JWKS, and keeps verifying the tokens it signed, for one token
    lifetime. Running instances on Redis switch to the new key within 30s.
`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.PersistentFlags().StringP("config", "c", "", "Configuration file Caddy runs with (default ./Caddyfile)")
			cmd.PersistentFlags().StringP("adapter", "a", "", "Name of the config adapter to apply")
			addOperatorCommands(cmd)
			rotate := &cobra.Command{
				Use:   "rotate-key [--json]",
				Short: "Replaces the signing key, keeping the old one for one token lifetime",
				Long: `
Writes a new signing key to the store the config names and keeps the old one
as retired: it stays in the JWKS and verifies the tokens it signed until they
expire (one token_ttl plus 30s leeway), then is dropped. Instances on Redis
switch within 30s, or at once when they see a token signed by the new key.
The embedded store must not be open in a running Caddy: stop it, rotate,
start it. Refused when the config sets signing_key (the stored key is not
used then; change signing_key instead).`,
				Args: cobra.NoArgs,
				RunE: caddycmd.WrapCommandFuncForCobra(cmdRotateKey),
			}
			rotate.Flags().Bool("json", false, "Print JSON instead of text")
			cmd.AddCommand(rotate)
		},
	})
}

func cmdRotateKey(fl caddycmd.Flags) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := rotateKey(ctx, os.Stdout, fl.String("config"), fl.String("adapter"), time.Now(), fl.Bool("json")); err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	return caddy.ExitCodeSuccess, nil
}

// rotateKey is the rotate-key subcommand: load the config, open its store,
// rotate, say what happened on out.
func rotateKey(ctx context.Context, out io.Writer, configFile, adapter string, now time.Time, asJSON bool) error {
	a, err := loadAppConfig(configFile, adapter)
	if err != nil {
		return err
	}
	if a.SigningKey != "" {
		return errors.New("rotate-key: the config sets signing_key, so tokens are signed with that key and not the stored one; rotate by changing signing_key (see README, Rotating the signing key)")
	}
	repl := caddy.NewReplacer()
	sealer, err := a.provisionSealer(repl)
	if err != nil {
		return err
	}
	st, where, err := openCommandStore(ctx, a, repl)
	if err != nil {
		return err
	}
	defer st.Close()
	rot, err := engine.RotateSigningKey(ctx, st, sealer, token.Config{Issuer: a.Issuer, TTL: time.Duration(a.TokenTTL)}, now)
	if err != nil {
		return fmt.Errorf("rotate-key: %s: %w", where, err)
	}
	if asJSON {
		return printJSON(out, map[string]any{"store": where, "new_kid": rot.NewKID, "old_kid": rot.OldKID, "old_verifies_until": rot.RetiredUntil.UTC()})
	}
	fmt.Fprintf(out, "signing key rotated in %s\n  new kid: %s\n  old kid: %s (in the JWKS and verifying until %s)\n",
		where, rot.NewKID, rot.OldKID, rot.RetiredUntil.UTC().Format(time.RFC3339))
	return nil
}

// loadAppConfig reads the register app from the config Caddy would run
// with, adapted like `caddy run` does.
func loadAppConfig(configFile, adapter string) (*App, error) {
	cfgJSON, file, _, err := caddycmd.LoadConfig(configFile, adapter)
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	if len(cfgJSON) == 0 {
		return nil, errors.New("no config found: pass --config with the file Caddy runs with")
	}
	var cfg struct {
		Apps map[string]json.RawMessage `json:"apps"`
	}
	if err := json.Unmarshal(cfgJSON, &cfg); err != nil {
		return nil, fmt.Errorf("config %s: %w", file, err)
	}
	raw, ok := cfg.Apps["register"]
	if !ok {
		return nil, fmt.Errorf("config %s has no register app (the global option register { … })", file)
	}
	a := new(App)
	if err := json.Unmarshal(raw, a); err != nil {
		return nil, fmt.Errorf("config %s: register app: %w", file, err)
	}
	if a.Store == nil {
		a.Store = &StoreConfig{Backend: "embedded"}
	}
	return a, nil
}

// openCommandStore opens the app's store for a command, outside Caddy (no
// pooling), and names it for messages (never with the URL, which may hold
// a password).
func openCommandStore(ctx context.Context, a *App, repl *caddy.Replacer) (store.Store, string, error) {
	switch a.Store.Backend {
	case "redis":
		url, err := a.Store.redisURL(repl)
		if err != nil {
			return nil, "", fmt.Errorf("store redis %w (is its environment variable set in this shell?)", err)
		}
		ns := a.keyDomain()
		s, err := redisstore.Open(url, ns)
		if err != nil {
			return nil, "", fmt.Errorf("store redis: %w", err)
		}
		where := "redis namespace " + ns
		if err := s.Ping(ctx); err != nil {
			s.Close()
			return nil, "", fmt.Errorf("%s: %w", where, err)
		}
		if err := s.CheckDeployment(ctx); err != nil {
			s.Close()
			return nil, "", fmt.Errorf("store redis: %w", err)
		}
		return s, where, nil
	case "embedded":
		path := repl.ReplaceKnown(a.Store.Path, "")
		if path == "" {
			path = filepath.Join(caddy.AppDataDir(), "register", "register.db")
		}
		s, err := boltstore.Open(path)
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, "", fmt.Errorf("embedded store %s is locked by a running Caddy: stop it, run rotate-key, then start it again", path)
		}
		if err != nil {
			return nil, "", err
		}
		return s, "embedded store " + path, nil
	default:
		return nil, "", fmt.Errorf("unknown store backend %q (want redis or embedded)", a.Store.Backend)
	}
}
