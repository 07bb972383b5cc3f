package caddyregister

// `caddy register export` and `caddy register import`: moving every record
// of one store to another (package port), for instance from the embedded
// file to Redis.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/caddyregister/caddyregister/caddyregister/engine"
	"github.com/caddyregister/caddyregister/caddyregister/secretbox"
	"github.com/caddyregister/caddyregister/caddyregister/store/port"
)

// addPortCommands adds export and import to the register command.
func addPortCommands(cmd *cobra.Command) {
	export := &cobra.Command{
		Use:   "export [--output <file>]",
		Short: "Writes every record of the config's store as JSON lines",
		Long: `
Writes the store the config names (--config, --adapter) as JSON lines, to
standard output or to --output (created with mode 0600): the stored secrets
(signing key, outbox key), tenants, users each with its live sessions and
unexpired link tokens, the outbox (queued, chained and parked messages) and
the sequences, then an end record with the count of each kind. Memory stays
flat however many users there are.

The stream holds password hashes, token hashes and the signing key (sealed
when the config sets key_encryption_key): keep it as you keep the store.

The export is not a snapshot: stop the instances writing to the store first
(the embedded store cannot be read while a Caddy holds it anyway).`,
		Args: cobra.NoArgs,
		RunE: caddycmd.WrapCommandFuncForCobra(portCommand(cmdExport)),
	}
	export.Flags().StringP("output", "o", "", "Write to this file instead of standard output")
	imp := &cobra.Command{
		Use:   "import [--input <file>] [--json]",
		Short: "Writes an export's records into the config's store",
		Long: `
Reads an export (standard input, or --input) and writes its records into
the store the config names. The stream is checked whole first: a truncated
or altered one (a bad record, counts that differ from its end record) is
refused before anything is written (standard input is copied to an
unlinked temporary file for that). A record already there (same id) is
left as it is, so an import cut short (the target failing, an interrupt)
is simply run again. A record that collides with
a different one (an e-mail held by another user, a tenant code held by
another tenant) is reported and the command fails; the rest is imported.
The counts in the export's end record are checked against what was read.
Sessions and link tokens that expired since the export are skipped.

The stored secrets replace the target's: tokens signed before the move keep
verifying. So a stream is as powerful as the store: import only streams you
exported. Sealed secrets (the source set key_encryption_key) are opened with
this config's key_encryption_key, which must be the source's, and sealed
again for this store.

  caddy register export --config old.Caddyfile | caddy register import --config new.Caddyfile`,
		Args: cobra.NoArgs,
		RunE: caddycmd.WrapCommandFuncForCobra(portCommand(cmdImport)),
	}
	imp.Flags().StringP("input", "i", "", "Read from this file instead of standard input")
	imp.Flags().Bool("json", false, "Print the report as JSON")
	cmd.AddCommand(export, imp)
}

// commandIn is where import reads by default (tests replace it).
var commandIn io.Reader = os.Stdin

// portCommand runs f on the provisioned app like userCommand, without a
// deadline (a store of millions of users takes minutes) but stopped by
// an interrupt.
func portCommand(f commandFunc) caddycmd.CommandFunc {
	return appCommand(func() (context.Context, context.CancelFunc) {
		return signal.NotifyContext(context.Background(), os.Interrupt)
	}, "stop it first (a move needs no instance writing), then run the command again", f)
}

// cmdExport writes the stream to --output (through a temporary file
// renamed at the end, so a failed export leaves no file that looks whole)
// or to out, and the counts to standard error.
func cmdExport(ctx context.Context, out io.Writer, a *App, fl caddycmd.Flags, _ []string) error {
	st, err := rawStore(a)
	if err != nil {
		return err
	}
	path := fl.String("output")
	w, finish := out, func() error { return nil }
	if path != "" {
		f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
		if err != nil {
			return fmt.Errorf("export: %w", err)
		}
		defer os.Remove(f.Name()) // a no-op once renamed
		w = f
		finish = func() error {
			if err := f.Sync(); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			return os.Rename(f.Name(), path)
		}
	}
	counts, err := port.Export(ctx, st, port.ExportOptions{Secrets: engine.StoreSecrets, KeyDomain: a.keyDomain(), Now: time.Now()}, w)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if err := finish(); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	fmt.Fprintf(commandErr, "exported %s\n", countLine(counts))
	return nil
}

// commandErr is where export reports (its standard output is the stream).
var commandErr io.Writer = os.Stderr

func countLine(c port.Counts) string {
	s := ""
	for i, k := range port.Kinds {
		if i > 0 {
			s += ", "
		}
		s += strconv.Itoa(c[k]) + " " + k + "s"
	}
	return s
}

// cmdImport reads the stream from --input or standard input and prints
// what it did, per kind, also when it failed part way.
func cmdImport(ctx context.Context, out io.Writer, a *App, fl caddycmd.Flags, _ []string) error {
	st, err := rawStore(a)
	if err != nil {
		return err
	}
	var in *os.File
	if path := fl.String("input"); path != "" {
		if in, err = os.Open(path); err != nil {
			return fmt.Errorf("import: %w", err)
		}
	} else if in, err = spool(commandIn); err != nil {
		return fmt.Errorf("import: %w", err)
	}
	defer in.Close()
	rep, err := port.Import(ctx, st, in, port.ImportOptions{Secrets: engine.StoreSecrets, Reseal: a.reseal, Now: time.Now()})
	if rep != nil {
		if fl.Bool("json") {
			if perr := printJSON(out, rep); perr != nil {
				return perr
			}
		} else {
			rows := [][]string{}
			for _, k := range port.Kinds {
				rows = append(rows, []string{k, strconv.Itoa(rep.Read[k]), strconv.Itoa(rep.Written[k]),
					strconv.Itoa(rep.Present[k]), strconv.Itoa(rep.Skipped[k]), strconv.Itoa(rep.Conflicts[k])})
			}
			if perr := table(out, []string{"KIND", "READ", "WRITTEN", "PRESENT", "SKIPPED", "CONFLICTS"}, rows); perr != nil {
				return perr
			}
			for _, p := range rep.Problems {
				fmt.Fprintln(out, "conflict:", p)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	return nil
}

// spool copies r to a temporary file and returns it at its start: the
// import reads its stream twice (checked whole, then written), and a pipe
// reads once. The file is mode 0600 and unlinked at once, so the records
// never stay on disk beyond the command.
func spool(r io.Reader) (*os.File, error) {
	f, err := os.CreateTemp("", "caddy-register-import-*")
	if err != nil {
		return nil, err
	}
	_ = os.Remove(f.Name())
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return nil, fmt.Errorf("read standard input: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// reseal gives the value to store in this app's store for a moved secret.
// A sealed value is bound to the source store's key domain (the embedded
// store's, or its Redis namespace): it is opened with this config's
// key_encryption_key for that domain and sealed again for this store's,
// so moving a store with a key-encryption key keeps it working. The key
// must be the source's; without one, or with another, the stream is
// refused before anything is written. A clear value is stored as it is
// (an instance with a key seals it in place when it starts).
func (a *App) reseal(name, fromDomain string, v []byte) ([]byte, error) {
	if !secretbox.IsSealed(v) {
		return v, nil
	}
	if a.box == nil {
		return nil, errors.New("it is sealed with a key_encryption_key and this config sets none: set the source's")
	}
	purpose := engine.SecretPurpose(name)
	plain, err := a.box.WithDomain(fromDomain).Open(purpose, v)
	if err != nil {
		return nil, fmt.Errorf("this config's key_encryption_key does not open it (it must be the source's): %w", err)
	}
	if fromDomain == a.keyDomain() {
		return v, nil
	}
	return a.box.Seal(purpose, plain)
}
