package tlsreload

import (
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/corsproc/corsproc/internal/testutil"
)

// serial is the serial number of the certificate cfg serves.
func serial(t *testing.T, cfg *tls.Config) int64 {
	t.Helper()
	c, err := x509.ParseCertificate(cfg.Certificates[0].Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return c.SerialNumber.Int64()
}

// A rotation is served from the first check after it, at most once per
// CheckInterval; a broken one keeps the last good certificate, and both
// are counted. The clock is the test's.
func TestReloaderFollowsRotation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := testutil.NewCA(t, "ca")
	files := Files{Cert: filepath.Join(dir, "tls.crt"), Key: filepath.Join(dir, "tls.key")}
	c1, k1, serial1 := ca.Issue(t, "corsproc", true)
	testutil.WriteAtomic(t, files.Cert, c1)
	testutil.WriteAtomic(t, files.Key, k1)
	r, err := New(files, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Now()
	r.now = func() time.Time { return clock }
	r.checked = clock

	cfg, err := r.ServerConfig().GetConfigForClient(&tls.ClientHelloInfo{})
	if err != nil {
		t.Fatal(err)
	}
	if got := serial(t, cfg); got != serial1 {
		t.Fatalf("serial %d, want %d", got, serial1)
	}
	if cfg.MinVersion != tls.VersionTLS12 || len(cfg.NextProtos) != 1 || cfg.NextProtos[0] != "h2" || cfg.ClientAuth != tls.NoClientCert {
		t.Errorf("config: min version %x, ALPN %q, client auth %v; want TLS 1.2, h2, none", cfg.MinVersion, cfg.NextProtos, cfg.ClientAuth)
	}

	c2, k2, serial2 := ca.Issue(t, "corsproc", true)
	testutil.WriteAtomic(t, files.Key, k2)
	testutil.WriteAtomic(t, files.Cert, c2)
	if got := serial(t, r.config()); got != serial1 {
		t.Errorf("serial %d before the check interval passed, want still %d", got, serial1)
	}
	clock = clock.Add(CheckInterval)
	if got := serial(t, r.config()); got != serial2 {
		t.Errorf("serial %d after the rotation, want %d", got, serial2)
	}

	testutil.WriteAtomic(t, files.Key, []byte("not a key"))
	clock = clock.Add(CheckInterval)
	if got := serial(t, r.config()); got != serial2 {
		t.Errorf("serial %d after a broken rotation, want the last good %d", got, serial2)
	}
	if s, f := promtest.ToFloat64(r.reloads.WithLabelValues("success")), promtest.ToFloat64(r.reloads.WithLabelValues("failure")); s != 1 || f != 1 {
		t.Errorf("reloads: %v successes, %v failures; want 1 and 1", s, f)
	}
}

// With a client CA, a client certificate it signed is required; files that
// do not make a configuration are refused by New.
func TestReloaderFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := testutil.NewCA(t, "ca")
	c, k, _ := ca.Issue(t, "corsproc", true)
	good := Files{Cert: filepath.Join(dir, "tls.crt"), Key: filepath.Join(dir, "tls.key"), ClientCA: filepath.Join(dir, "ca.crt")}
	testutil.WriteAtomic(t, good.Cert, c)
	testutil.WriteAtomic(t, good.Key, k)
	testutil.WriteAtomic(t, good.ClientCA, ca.PEM)
	r, err := New(good, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg := r.config(); cfg.ClientAuth != tls.RequireAndVerifyClientCert || cfg.ClientCAs == nil {
		t.Errorf("client auth %v, CAs %v; want a verified client certificate required", cfg.ClientAuth, cfg.ClientCAs)
	}

	garbage := filepath.Join(dir, "garbage.pem")
	testutil.WriteAtomic(t, garbage, []byte("-----BEGIN NOTHING-----\n"))
	for name, c := range map[string]struct {
		files Files
		want  string
	}{
		"missing cert":   {Files{Cert: filepath.Join(dir, "absent.crt"), Key: good.Key}, "absent.crt"},
		"garbage key":    {Files{Cert: good.Cert, Key: garbage}, "--tls-key " + garbage},
		"missing CA":     {Files{Cert: good.Cert, Key: good.Key, ClientCA: filepath.Join(dir, "absent-ca.crt")}, "absent-ca.crt"},
		"CA without PEM": {Files{Cert: good.Cert, Key: good.Key, ClientCA: garbage}, "no PEM certificate"},
	} {
		if _, err := New(c.files, slog.New(slog.DiscardHandler), nil); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error naming %q", name, err, c.want)
		}
	}
}
