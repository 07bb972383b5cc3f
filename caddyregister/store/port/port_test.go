package port_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyregister/caddyregister/caddyregister/store"
	"github.com/caddyregister/caddyregister/caddyregister/store/boltstore"
	"github.com/caddyregister/caddyregister/caddyregister/store/port"
	"github.com/caddyregister/caddyregister/caddyregister/store/redisstore"
	"github.com/caddyregister/caddyregister/caddyregister/store/storetest"
	"github.com/caddyregister/caddyregister/internal/testredis"
)

// One Redis Cluster for the test binary, started by the first test that
// needs it; TestMain stops it.
var (
	clu   testredis.SharedCluster
	nsSeq atomic.Int64
)

func TestMain(m *testing.M) {
	code := m.Run()
	clu.Stop()
	os.Exit(code)
}

func openBolt(tb testing.TB) store.Store {
	s, err := boltstore.Open(filepath.Join(tb.TempDir(), "register.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func openRedis(tb testing.TB, srv *testredis.Server) store.Store {
	s, err := redisstore.Open(srv.URL(0), fmt.Sprintf("port%d", nsSeq.Add(1)))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func openCluster(tb testing.TB) store.Store {
	s := redisstore.NewCluster(clu.Get(tb).NewClusterClient(), fmt.Sprintf("port%d", nsSeq.Add(1)))
	tb.Cleanup(func() { s.Close() })
	return s
}

// TestPortAcrossBackends moves stores between every pair of layouts the
// commands meet: the embedded file to one Redis node, one node to a
// cluster, a cluster back to a file.
func TestPortAcrossBackends(t *testing.T) {
	srv := testredis.Start(t)
	bolt := func(t *testing.T) store.Store { return openBolt(t) }
	single := func(t *testing.T) store.Store { return openRedis(t, srv) }
	cluster := func(t *testing.T) store.Store { return openCluster(t) }
	t.Run("EmbeddedToRedis", func(t *testing.T) { storetest.RunPorter(t, bolt, single) })
	t.Run("RedisToCluster", func(t *testing.T) { storetest.RunPorter(t, single, cluster) })
	t.Run("ClusterToEmbedded", func(t *testing.T) { storetest.RunPorter(t, cluster, bolt) })
}

// TestExportMemoryFlat: an export holds a page of users at a time, not the
// store: the heap in use while it streams does not grow with the users.
func TestExportMemoryFlat(t *testing.T) {
	s := openBolt(t)
	seed(t, s, 3000)
	// The heap the export adds over what the store itself keeps (bbolt's
	// freelist grows with the file), sampled while it streams.
	peak := func() uint64 {
		// A first run lets the collector free what seeding left.
		if _, err := port.Export(context.Background(), s, port.ExportOptions{Now: time.Now()}, io.Discard); err != nil {
			t.Fatal(err)
		}
		var max uint64
		w := &sampler{every: 10, max: &max} // writes come 64 KiB at a time (bufio)
		if _, err := port.Export(context.Background(), s, port.ExportOptions{Now: time.Now()}, w); err != nil {
			t.Fatal(err)
		}
		return max - min(max, heapInUse())
	}
	small := peak()
	seed(t, s, 12000)
	large := peak()
	// Five times the users; a store held in memory would take five times
	// the heap (about 1.3 KiB a user). Allow some slack.
	t.Logf("heap growth while exporting: %d KiB with 3,000 users, %d KiB with 15,000", small>>10, large>>10)
	if large > 2*small+(2<<20) {
		t.Fatalf("heap growth while exporting: %d KiB with 3,000 users, %d KiB with 15,000", small>>10, large>>10)
	}
}

// sampler discards what it is written and samples the heap in use every
// so many writes.
type sampler struct {
	every, n int
	max      *uint64
}

func (s *sampler) Write(p []byte) (int, error) {
	s.n++
	if s.n%s.every == 0 {
		if h := heapInUse(); h > *s.max {
			*s.max = h
		}
	}
	return len(p), nil
}

// seed writes n users with a session each, concurrently so the embedded
// store batches the commits.
func seed(tb testing.TB, s store.Store, n int) {
	tb.Helper()
	now := time.Now()
	errs := storetest.RunConcurrent(n, func(i int) error {
		u := storetest.NewTestUser(fmt.Sprintf("seed%d-%d@port.example", nsSeq.Add(1), i), "")
		return s.CreateUser(context.Background(), store.NewUser{User: u,
			Session: storetest.NewTestSession(u.ID, now, time.Hour, 24*time.Hour),
			Token:   storetest.NewTestToken(u.ID, now.Add(time.Hour))})
	})
	for _, err := range errs {
		if err != nil {
			tb.Fatal(err)
		}
	}
}

// BenchmarkMove: the embedded store to one Redis node, as `caddy register
// export | caddy register import` does (export, check, import), for 20,000 users
// each with a session and a link token. users/s is what the README's
// downtime figure rests on.
func BenchmarkMove(b *testing.B) {
	const users = 20000
	src := openBolt(b)
	seed(b, src, users)
	srv := testredis.Start(b)
	b.ResetTimer()
	for range b.N {
		dst := openRedis(b, srv)
		var stream bytes.Buffer
		if _, err := port.Export(context.Background(), src, port.ExportOptions{Now: time.Now()}, &stream); err != nil {
			b.Fatal(err)
		}
		rep, err := port.Import(context.Background(), dst, bytes.NewReader(stream.Bytes()), port.ImportOptions{Now: time.Now()})
		if err != nil {
			b.Fatal(err)
		}
		if rep.Written[port.KindUser] != users {
			b.Fatalf("wrote %d users", rep.Written[port.KindUser])
		}
	}
	b.ReportMetric(float64(users*b.N)/b.Elapsed().Seconds(), "users/s")
}

// cutReader calls cut once more than after bytes have been read, seeks
// included (an import reads its stream twice).
type cutReader struct {
	r     io.ReadSeeker
	after int
	read  int
	cut   func()
	once  sync.Once
}

func (c *cutReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.read += n
	if c.read > c.after {
		c.once.Do(c.cut)
	}
	return n, err
}

func (c *cutReader) Seek(off int64, whence int) (int64, error) { return c.r.Seek(off, whence) }

func exportOf(t *testing.T, s store.Store) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := port.Export(context.Background(), s, port.ExportOptions{Now: time.Now()}, &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestImportInterrupted: an import stopped half-way (an operator's ^C)
// reports what it wrote; run again, it writes the rest and finds the rest
// present, and the target then holds the source's records.
func TestImportInterrupted(t *testing.T) {
	const n = 2000
	src := openBolt(t)
	seed(t, src, n)
	stream := exportOf(t, src)
	srv := testredis.Start(t)
	dst := openRedis(t, srv)

	ctx, cancel := context.WithCancel(context.Background())
	rep1, err := port.Import(ctx, dst, &cutReader{r: bytes.NewReader(stream), after: len(stream) * 3 / 2, cut: cancel}, port.ImportOptions{Now: time.Now()})
	if !errors.Is(err, context.Canceled) && !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("interrupted import = %v, want it canceled", err)
	}
	if w := rep1.Written[port.KindUser]; w == 0 || w >= n {
		t.Fatalf("interrupted import wrote %d users, want some of %d", w, n)
	}
	rep2, err := port.Import(context.Background(), dst, bytes.NewReader(stream), port.ImportOptions{Now: time.Now()})
	if err != nil {
		t.Fatalf("second import: %v", err)
	}
	for _, k := range []string{port.KindUser, port.KindSession, port.KindToken} {
		if rep2.Written[k]+rep2.Present[k] != n || rep2.Present[k] < rep1.Written[k] {
			t.Errorf("%s: first run wrote %d; second wrote %d and found %d, want %d in all", k, rep1.Written[k], rep2.Written[k], rep2.Present[k], n)
		}
	}
	if a, b := records(exportOf(t, src)), records(exportOf(t, dst)); !slices.Equal(a, b) {
		t.Errorf("the target differs from the source after the rerun: %d records against %d", len(b), len(a))
	}
}

// records are a stream's records but its header, sorted.
func records(stream []byte) []string {
	lines := strings.Split(strings.TrimSpace(string(stream)), "\n")
	return slices.Sorted(slices.Values(lines[1:]))
}

// TestImportTargetDown: the target failing mid-import ends it with an
// error saying the store is unavailable, without hanging the workers or
// the reader.
func TestImportTargetDown(t *testing.T) {
	src := openBolt(t)
	seed(t, src, 2000)
	stream := exportOf(t, src)
	srv := testredis.Start(t)
	dst := openRedis(t, srv)
	rep, err := port.Import(context.Background(), dst, &cutReader{r: bytes.NewReader(stream), after: len(stream) * 4 / 3, cut: srv.Kill}, port.ImportOptions{Now: time.Now()})
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("import with the target down = %v, want ErrUnavailable", err)
	}
	if rep.Written[port.KindUser] >= 2000 {
		t.Fatalf("wrote %d users with the target down", rep.Written[port.KindUser])
	}
}
