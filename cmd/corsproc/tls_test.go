package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/corsproc/corsproc/internal/testutil"
)

// tlsServer writes a server certificate from ca into dir and returns the
// serve flags that use it.
func tlsServer(t *testing.T, dir string, ca *testutil.CA) (args []string, certFile, keyFile string, serial int64) {
	t.Helper()
	c, k, serial := ca.Issue(t, "corsproc", true)
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	testutil.WriteAtomic(t, certFile, c)
	testutil.WriteAtomic(t, keyFile, k)
	return []string{"--tls-cert", certFile, "--tls-key", keyFile}, certFile, keyFile, serial
}

func clientTLS(ca *testutil.CA, certs ...tls.Certificate) *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	cfg := &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}
	if len(certs) > 0 {
		// Always present the certificate: Go's client would otherwise
		// leave out one that the server's list of acceptable CAs does not
		// name, and the server would never see it.
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &certs[0], nil }
	}
	return cfg
}

// healthOver checks the gRPC health service over a new connection with the
// given transport security, returning the error if any.
func healthOver(t *testing.T, target string, creds credentials.TransportCredentials) error {
	t.Helper()
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err == nil && resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health over TLS: %v", resp.GetStatus())
	}
	return err
}

// servedSerial returns the serial number of the certificate the server
// presents in a new handshake.
func servedSerial(t *testing.T, addr string, cfg *tls.Config) int64 {
	t.Helper()
	cfg = cfg.Clone()
	cfg.NextProtos = []string{"h2"}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: waitLimit}, "tcp", addr, cfg)
	if err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	defer conn.Close()
	if p := conn.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Errorf("ALPN %q, want h2", p)
	}
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

// TestServeTLS: with --tls-cert and --tls-key the gRPC listener speaks TLS
// only, /readyz still works, and a rotated certificate is served without a
// restart; a broken rotation keeps the last good certificate.
func TestServeTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := testutil.NewCA(t, "corsproc test CA")
	args, certFile, keyFile, serial1 := tlsServer(t, dir, ca)
	in := startServe(t, append(args, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0")...)

	good := credentials.NewTLS(clientTLS(ca))
	if err := healthOver(t, in.addrs.grpc, good); err != nil {
		t.Fatalf("TLS client: %v", err)
	}
	if err := healthOver(t, in.addrs.grpc, insecureCreds()); err == nil {
		t.Error("a plaintext client was served by a TLS listener")
	}
	otherCA := testutil.NewCA(t, "another CA")
	if err := healthOver(t, in.addrs.grpc, credentials.NewTLS(clientTLS(otherCA))); err == nil {
		t.Error("a client that does not trust the certificate's CA connected")
	}
	if code, body := get(t, "GET", "http://"+in.addrs.admin+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz over TLS = %d %q, want 200", code, body)
	}
	if got := servedSerial(t, in.addrs.grpc, clientTLS(ca)); got != serial1 {
		t.Fatalf("served serial %d, want %d", got, serial1)
	}

	// Rotation: a new certificate and key, written as rotation tools do.
	c2, k2, serial2 := ca.Issue(t, "corsproc", true)
	testutil.WriteAtomic(t, keyFile, k2)
	testutil.WriteAtomic(t, certFile, c2)
	deadline := time.Now().Add(waitLimit)
	for servedSerial(t, in.addrs.grpc, clientTLS(ca)) != serial2 {
		if time.Now().After(deadline) {
			t.Fatalf("the rotated certificate is not served after %v; logs:\n%s", waitLimit, in.logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := healthOver(t, in.addrs.grpc, good); err != nil {
		t.Errorf("after rotation: %v", err)
	}

	// A broken rotation: the key does not parse. The last good certificate
	// keeps serving, and the failure is logged and counted.
	testutil.WriteAtomic(t, keyFile, []byte("not a key"))
	deadline = time.Now().Add(waitLimit)
	for !strings.Contains(in.logs.String(), "TLS files changed but cannot be loaded") {
		if time.Now().After(deadline) {
			t.Fatalf("no log of the failed reload; logs:\n%s", in.logs)
		}
		if got := servedSerial(t, in.addrs.grpc, clientTLS(ca)); got != serial2 {
			t.Fatalf("served serial %d after a broken rotation, want %d", got, serial2)
		}
		time.Sleep(100 * time.Millisecond)
	}
	_, metrics := get(t, "GET", "http://"+in.addrs.admin+"/metrics")
	if v := metricValue(t, metrics, `corsproc_tls_reloads_total{result="success"}`); v < 1 {
		t.Errorf("TLS reload successes %v, want at least 1", v)
	}
	if v := metricValue(t, metrics, `corsproc_tls_reloads_total{result="failure"}`); v < 1 {
		t.Errorf("TLS reload failures %v, want at least 1", v)
	}
}

// TestServeMutualTLS: with --client-ca, a client must present a certificate
// that CA signed; none, or one from another CA (even the server's own), is
// refused. A rotated client CA file is followed without a restart.
func TestServeMutualTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	serverCA := testutil.NewCA(t, "server CA")
	clientCA := testutil.NewCA(t, "envoy client CA")
	rogueCA := testutil.NewCA(t, "rogue CA")
	args, _, _, _ := tlsServer(t, dir, serverCA)
	caFile := filepath.Join(dir, "client-ca.crt")
	testutil.WriteAtomic(t, caFile, clientCA.PEM)
	in := startServe(t, append(args, "--client-ca", caFile, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0")...)

	envoy := clientCA.KeyPair(t, "envoy")
	for name, cfg := range map[string]*tls.Config{
		"no client certificate":          clientTLS(serverCA),
		"certificate of an untrusted CA": clientTLS(serverCA, rogueCA.KeyPair(t, "envoy")),
		"certificate of the server's CA": clientTLS(serverCA, serverCA.KeyPair(t, "envoy")),
		"self-signed client certificate": clientTLS(serverCA, selfSigned(t)),
		"plaintext":                      nil,
	} {
		creds := insecureCreds()
		if cfg != nil {
			creds = credentials.NewTLS(cfg)
		}
		if err := healthOver(t, in.addrs.grpc, creds); err == nil {
			t.Errorf("%s: served, want refused", name)
		} else {
			t.Logf("%s: refused: %v", name, status.Convert(err).Message())
		}
	}
	if err := healthOver(t, in.addrs.grpc, credentials.NewTLS(clientTLS(serverCA, envoy))); err != nil {
		t.Fatalf("client certificate signed by --client-ca refused: %v", err)
	}
	if code, _ := get(t, "GET", "http://"+in.addrs.admin+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz with mutual TLS = %d, want 200", code)
	}

	// Rotate the client CA: the new CA's clients get in, the old one's not.
	testutil.WriteAtomic(t, caFile, rogueCA.PEM)
	rogue := credentials.NewTLS(clientTLS(serverCA, rogueCA.KeyPair(t, "envoy-2")))
	deadline := time.Now().Add(waitLimit)
	for healthOver(t, in.addrs.grpc, rogue) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("the rotated client CA is not used after %v; logs:\n%s", waitLimit, in.logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := healthOver(t, in.addrs.grpc, credentials.NewTLS(clientTLS(serverCA, envoy))); err == nil {
		t.Error("a client of the replaced CA still gets in")
	}
}

func insecureCreds() credentials.TransportCredentials { return insecure.NewCredentials() }

func selfSigned(t *testing.T) tls.Certificate {
	ca := testutil.NewCA(t, "self")
	return tls.Certificate{Certificate: [][]byte{ca.Cert.Raw}, PrivateKey: ca.Key}
}

// A TLS flag naming a missing or broken file stops serve before it binds.
func TestServeTLSBadFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := testutil.NewCA(t, "ca")
	args, _, keyFile, _ := tlsServer(t, dir, ca)
	garbage := filepath.Join(dir, "garbage.pem")
	testutil.WriteAtomic(t, garbage, []byte("-----BEGIN NOTHING-----\n"))
	for name, extra := range map[string][]string{
		"missing cert":   {"--tls-cert", filepath.Join(dir, "absent.crt"), "--tls-key", keyFile},
		"garbage key":    {"--tls-cert", args[1], "--tls-key", garbage},
		"missing CA":     append(append([]string{}, args...), "--client-ca", filepath.Join(dir, "absent-ca.crt")),
		"CA without PEM": append(append([]string{}, args...), "--client-ca", garbage),
	} {
		e := &env{stdout: io.Discard, stderr: new(testutil.SyncBuffer), ready: func(l listening) { t.Errorf("%s: serve listens", name) }}
		err := run(t.Context(), append([]string{"serve", "--listen", "127.0.0.1:0", "--admin", ""}, extra...), e)
		if err == nil || !strings.Contains(err.Error(), "not serving") {
			t.Errorf("%s: %v, want a not serving error", name, err)
		}
		if exitCode(err) != 1 {
			t.Errorf("%s: exit code %d, want 1", name, exitCode(err))
		}
	}
}
