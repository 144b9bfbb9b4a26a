// Package tlsreload serves the TLS configuration of corsproc's gRPC
// listener from its certificate, key and client CA files, and follows
// their rotation without a restart (docs/security.md, "Rotation").
package tlsreload

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// CheckInterval bounds how often a handshake looks at the certificate
// files: at most once per interval, whatever the handshake rate, a stat of
// each file; a reload only when one of them changed. Envoy holds its
// connections to corsproc for long, so handshakes are rare anyway.
const CheckInterval = time.Second

// metricTLSReloads counts certificate reloads by result.
const metricTLSReloads = "corsproc_tls_reloads_total"

// Files are the --tls-cert, --tls-key and --client-ca paths.
type Files struct {
	Cert, Key string
	ClientCA  string // "": no client certificate asked for
}

// fileStamp identifies a version of a file cheaply: a rotation, whether it
// rewrites the file, renames a new one over it or swaps a Kubernetes
// Secret's ..data symlink (os.Stat follows it), changes one of these.
type fileStamp struct {
	size    int64
	modTime time.Time
	ino     uint64
}

func stampOf(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{size: fi.Size(), modTime: fi.ModTime(), ino: inode(fi)}, nil
}

// Reloader serves the gRPC listener's TLS configuration and follows
// rotations of its files without a restart: every handshake asks it for the
// configuration, and at most once per CheckInterval it compares the
// files' stamps and reloads them when they changed. A reload that fails (a
// half-written rotation, a key that does not match the certificate) keeps
// the last good configuration serving, is logged and counted, and is tried
// again at the next check.
type Reloader struct {
	files Files
	log   *slog.Logger
	now   func() time.Time

	mu      sync.Mutex // one check at a time
	checked time.Time
	stamps  [3]fileStamp // of the files cur was loaded from

	cur     atomic.Pointer[tls.Config]
	reloads *prometheus.CounterVec
}

// New loads the files, failing if they do not make a working
// configuration: serve must not start on a broken certificate. The reload
// counter goes to reg unless it is nil.
func New(files Files, log *slog.Logger, reg prometheus.Registerer) (*Reloader, error) {
	r := &Reloader{
		files: files,
		log:   log,
		now:   time.Now,
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: metricTLSReloads,
			Help: "Reloads of the gRPC listener's TLS certificate, key and client CA files after they changed, by result: success, or failure (the previous ones keep serving).",
		}, []string{"result"}),
	}
	r.reloads.WithLabelValues("success")
	r.reloads.WithLabelValues("failure")
	if reg != nil {
		reg.MustRegister(r.reloads)
	}
	stamps, err := r.stamp()
	if err != nil {
		return nil, err
	}
	cfg, err := loadTLSConfig(files)
	if err != nil {
		return nil, err
	}
	r.cur.Store(cfg)
	r.stamps = stamps
	r.checked = r.now()
	return r, nil
}

func (r *Reloader) paths() []string {
	ps := []string{r.files.Cert, r.files.Key}
	if r.files.ClientCA != "" {
		ps = append(ps, r.files.ClientCA)
	}
	return ps
}

func (r *Reloader) stamp() ([3]fileStamp, error) {
	var s [3]fileStamp
	for i, p := range r.paths() {
		st, err := stampOf(p)
		if err != nil {
			return s, err
		}
		s[i] = st
	}
	return s, nil
}

// ServerConfig is the tls.Config of the gRPC listener: every handshake gets
// the current configuration from GetConfigForClient.
func (r *Reloader) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return r.config(), nil
		},
	}
}

// config returns the current configuration, reloading the files first when
// the check interval has passed and they changed.
func (r *Reloader) config() *tls.Config {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if now.Sub(r.checked) < CheckInterval {
		return r.cur.Load()
	}
	r.checked = now
	stamps, err := r.stamp()
	if err == nil && stamps == r.stamps {
		return r.cur.Load()
	}
	var cfg *tls.Config
	if err == nil {
		cfg, err = loadTLSConfig(r.files)
	}
	if err != nil {
		r.reloads.WithLabelValues("failure").Inc()
		r.log.Error("TLS files changed but cannot be loaded; the previous certificate keeps serving",
			"cert", r.files.Cert, "key", r.files.Key, "client_ca", r.files.ClientCA, "error", err.Error())
		return r.cur.Load()
	}
	r.cur.Store(cfg)
	r.stamps = stamps
	r.reloads.WithLabelValues("success").Inc()
	r.log.Info("TLS certificate reloaded", "cert", r.files.Cert, "not_after", notAfter(cfg))
	return cfg
}

func notAfter(cfg *tls.Config) string {
	if leaf := cfg.Certificates[0].Leaf; leaf != nil {
		return leaf.NotAfter.UTC().Format(time.RFC3339)
	}
	return ""
}

// loadTLSConfig builds the listener's configuration from the files: TLS 1.2
// at least, HTTP/2 by ALPN (gRPC over TLS requires it: the Envoy cluster's
// TLS context must offer h2), and with a client CA, a client certificate
// that CA signed, required and verified.
func loadTLSConfig(files Files) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(files.Cert, files.Key)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert %s, --tls-key %s: %w", files.Cert, files.Key, err)
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{"h2"},
	}
	if files.ClientCA != "" {
		pem, err := os.ReadFile(files.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("--client-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--client-ca %s: no PEM certificate in it", files.ClientCA)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}
