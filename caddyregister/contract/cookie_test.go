package contract

import (
	"crypto/tls"
	"net/http/httptest"
	"testing"
)

// TestSecureCookies: Secure is left out only for plain HTTP to localhost.
func TestSecureCookies(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost:8080": false, "localhost": false, "app.localhost": false, "127.0.0.1:8080": false, "[::1]:8080": false,
		"example.com": true, "example.com:8080": true, "10.0.0.1": true, "localhost.example.com": true,
	} {
		r := httptest.NewRequest("POST", "http://"+host+"/account/login", nil)
		if got := SecureCookies(r); got != want {
			t.Errorf("http://%s: Secure %v, want %v", host, got, want)
		}
		r.TLS = &tls.ConnectionState{}
		if !SecureCookies(r) {
			t.Errorf("https://%s: no Secure", host)
		}
	}
}
