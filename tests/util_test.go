package tests

import (
	"io"
	"net/http"
	"testing"

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
