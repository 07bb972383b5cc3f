package testredis

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// TLSFiles are a throwaway CA and a server certificate for 127.0.0.1
// and localhost, as PEM files, for redis-server's tls-* options.
type TLSFiles struct {
	Dir, CA, Cert, Key string
	// Config trusts the CA, for the harness's own clients.
	Config *tls.Config
}

// NewTLSFiles writes a CA and a server certificate into a new temporary
// directory; Remove deletes it. Clients that verify through the system
// pool trust the CA when SSL_CERT_FILE names CA before the pool loads.
func NewTLSFiles() (*TLSFiles, error) {
	dir, err := os.MkdirTemp("", "testredis-tls-*")
	if err != nil {
		return nil, fmt.Errorf("create tls dir: %w", err)
	}
	f := &TLSFiles{Dir: dir, CA: filepath.Join(dir, "ca.pem"), Cert: filepath.Join(dir, "cert.pem"), Key: filepath.Join(dir, "key.pem")}
	if err := f.generate(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return f, nil
}

func (f *TLSFiles) generate() error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "testredis CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature,
		// Redis nodes are clients of each other (replication, cluster bus).
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	for path, block := range map[string]*pem.Block{
		f.CA:   {Type: "CERTIFICATE", Bytes: caDER},
		f.Cert: {Type: "CERTIFICATE", Bytes: der},
		f.Key:  {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	f.Config = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return nil
}

// serverArgs are redis-server's options to serve TLS only, on port.
func (f *TLSFiles) serverArgs(port int) []string {
	return []string{
		"--port", "0", "--tls-port", fmt.Sprint(port),
		"--tls-cert-file", f.Cert, "--tls-key-file", f.Key, "--tls-ca-cert-file", f.CA,
		"--tls-auth-clients", "no", "--tls-replication", "yes",
	}
}

// Remove deletes the files.
func (f *TLSFiles) Remove() { os.RemoveAll(f.Dir) }
