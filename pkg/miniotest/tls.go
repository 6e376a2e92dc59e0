package miniotest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// StartTLS runs MinIO like Start, but serving HTTPS with a fresh
// self-signed certificate for 127.0.0.1 (what SSE-C needs: MinIO refuses
// customer keys over plain HTTP). ca is that certificate's PEM file, for
// AWS_CA_BUNDLE.
func StartTLS(dir string, env ...string) (s *Server, ca string, err error) {
	certs := filepath.Join(dir, "certs")
	if err := os.MkdirAll(certs, 0o700); err != nil {
		return nil, "", err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "s3bak test MinIO"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, "", err
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, "", err
	}
	ca = filepath.Join(certs, "public.crt")
	if err := os.WriteFile(filepath.Join(certs, "private.key"), pemBlock("PRIVATE KEY", pk), 0o600); err != nil {
		return nil, "", err
	}
	if err := os.WriteFile(ca, pemBlock("CERTIFICATE", der), 0o644); err != nil {
		return nil, "", err
	}
	s, err = Start(dir, env...)
	return s, ca, err
}

// trusting is an HTTP client that trusts the certificate in the PEM file ca.
func trusting(ca string) (*http.Client, error) {
	b, err := os.ReadFile(ca)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, errors.New("no certificate in " + ca)
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{RootCAs: pool}
	return &http.Client{Transport: t}, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func pemBlock(typ string, b []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b})
}

// HTTPClient reaches the server; over TLS it trusts the server's
// certificate.
func (s *Server) HTTPClient() *http.Client { return s.http }
