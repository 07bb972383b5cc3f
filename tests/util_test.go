package tests

import (
	"encoding/base64"
	"io"
	"mime/quotedprintable"
	"net/http"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/caddyregister/caddyregister/internal/testredis"
)

func readAll(t *testing.T, res *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// startOwnRedis starts a redis-server for a test that breaks it.
func startOwnRedis(t *testing.T) *testredis.Server {
	return testredis.Start(t)
}

func decodeBody(t *testing.T, r io.Reader, enc string) string {
	t.Helper()
	switch strings.ToLower(enc) {
	case "quoted-printable":
		r = quotedprintable.NewReader(r)
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, &stripNewlines{r: r})
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// stripNewlines drops CR and LF, which base64 bodies wrap with.
type stripNewlines struct{ r io.Reader }

func (s *stripNewlines) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	j := 0
	for _, c := range p[:n] {
		if c != '\r' && c != '\n' {
			p[j] = c
			j++
		}
	}
	return j, err
}

func redisClient(t *testing.T) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: redisSrv.Addr})
	t.Cleanup(func() { c.Close() })
	return c
}
