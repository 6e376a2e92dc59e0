// Package miniotest runs a real MinIO server for tests: loopback, a free
// port, a temporary directory, killed at the end. s3bak's tests talk to it
// and never to an in-memory S3 fake, which would hide the wire behaviour
// (checksums, multipart, conditional writes) that matters for backups.
package miniotest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Credentials of the test server's root user.
const (
	AccessKey = "s3bak-test-access"
	SecretKey = "s3bak-test-secret-key-0123456789"
)

// Server is a running MinIO.
type Server struct {
	URL  string
	Dir  string
	cmd  *exec.Cmd
	done chan error
	log  *os.File
	env  []string
	// http reaches the server: over TLS (StartTLS) it trusts the server's
	// own certificate.
	http *http.Client
}

// Signal sends sig to the server: SIGSTOP and SIGCONT make a server that
// stops answering without closing a connection, as a hung host does.
func (s *Server) Signal(sig syscall.Signal) error {
	return syscall.Kill(-s.cmd.Process.Pid, sig)
}

// Restart kills the server, waits down, then starts it again on the same
// address with the same data: a crashed and restarted S3 endpoint.
func (s *Server) Restart(down time.Duration) error {
	addr := s.URL[strings.Index(s.URL, "://")+3:]
	s.Stop()
	time.Sleep(down)
	bin, err := Binary()
	if err != nil {
		return err
	}
	var next *Server
	for range 50 { // the port may linger a moment
		if next, err = startAt(bin, s.Dir, addr, s.env); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	*s = *next
	return nil
}

// Binary finds the minio server: $S3BAK_MINIO, then $PATH, then
// $(go env GOPATH)/bin, where `make tools` installs it.
func Binary() (string, error) {
	if p := os.Getenv("S3BAK_MINIO"); p != "" {
		return p, nil
	}
	if p, err := exec.LookPath("minio"); err == nil {
		return p, nil
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
			gopath = strings.TrimSpace(string(out))
		}
	}
	for _, dir := range filepath.SplitList(gopath) {
		p := filepath.Join(dir, "bin", "minio")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("the minio server binary was not found: run `make tools` (it installs the pinned MinIO into $(go env GOPATH)/bin), or set S3BAK_MINIO")
}

// Start runs MinIO on 127.0.0.1 with its data in dir and waits until it
// answers. A port taken between probing and binding is retried. env
// ("KEY=value") is added to the server's environment, e.g.
// MINIO_SITE_REGION, without touching this process's.
func Start(dir string, env ...string) (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	var lastErr error
	for range 5 {
		s, err := start(bin, dir, env)
		if err == nil {
			return s, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func start(bin, dir string, env []string) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	return startAt(bin, dir, fmt.Sprintf("127.0.0.1:%d", port), env)
}

func startAt(bin, dir, addr string, env []string) (*Server, error) {
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		return nil, err
	}
	logf, err := os.CreateTemp(dir, "minio-*.log")
	if err != nil {
		return nil, err
	}
	args := []string{"server", "--quiet", "--address", addr}
	scheme, hc := "http", http.DefaultClient
	if certs := filepath.Join(dir, "certs"); fileExists(filepath.Join(certs, "public.crt")) {
		// StartTLS wrote a certificate: MinIO serves HTTPS with it.
		if hc, err = trusting(filepath.Join(certs, "public.crt")); err != nil {
			logf.Close()
			return nil, err
		}
		scheme = "https"
		args = append(args, "--certs-dir", certs)
	}
	cmd := exec.Command(bin, append(args, data)...)
	cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+AccessKey, "MINIO_ROOT_PASSWORD="+SecretKey,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off", "MINIO_CI_CD=1")
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, so a killed test run does not leave it behind
	// holding the terminal.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start minio: %w", err)
	}
	s := &Server{URL: scheme + "://" + addr, Dir: dir, cmd: cmd, done: make(chan error, 1), log: logf, env: env, http: hc}
	go func() { s.done <- cmd.Wait() }()
	if err := s.waitReady(60 * time.Second); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *Server) waitReady(limit time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	for {
		select {
		case err := <-s.done:
			return fmt.Errorf("minio exited before it was ready (%v); its log: %s", err, s.Log())
		case <-ctx.Done():
			return fmt.Errorf("minio not ready after %s; its log: %s", limit, s.Log())
		case <-time.After(50 * time.Millisecond):
		}
		resp, err := s.http.Get(s.URL + "/minio/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
}

// Log returns what the server printed, for failure messages.
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.log.Name())
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// Stop kills the server and waits for it to exit.
func (s *Server) Stop() {
	if s.cmd.Process != nil {
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
		s.cmd.Process = nil
	}
	s.log.Close()
}

// Env returns the environment a client needs to reach the server with the
// standard AWS settings and nothing from this machine's AWS configuration.
func (s *Server) Env() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + SecretKey,
		"AWS_REGION=us-east-1",
		"AWS_ENDPOINT_URL_S3=" + s.URL,
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE=" + os.DevNull,
		"AWS_SHARED_CREDENTIALS_FILE=" + os.DevNull,
	}
}

// Setenv applies Env to this process; for TestMain.
func (s *Server) Setenv() {
	for _, kv := range s.Env() {
		k, v, _ := strings.Cut(kv, "=")
		os.Setenv(k, v)
	}
}

// MakeBucket creates a bucket on the server.
func (s *Server) MakeBucket(ctx context.Context, name string) error {
	cli := s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(s.URL),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(AccessKey, SecretKey, ""),
		HTTPClient:   s.http,
	})
	// A server that reports ready may still answer "not initialized yet"
	// (503) for a while, longer on a loaded machine: wait it out.
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, err := cli.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &name})
		if err == nil {
			return nil
		}
		if !strings.Contains(err.Error(), "XMinioServerNotInitialized") || time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// Main is a package's TestMain: it starts MinIO in a temp dir, points the
// AWS environment at it, makes the buckets, runs setup (to build clients)
// and the tests, and stops and removes everything. It returns the exit
// code for os.Exit.
func Main(m interface{ Run() int }, setup func(*Server) error, buckets ...string) int {
	dir, err := os.MkdirTemp("", "s3bak-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	srv, err := Start(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		return 1
	}
	defer srv.Stop()
	srv.Setenv()
	for _, b := range buckets {
		if err := srv.MakeBucket(context.Background(), b); err != nil {
			fmt.Fprintln(os.Stderr, "FAIL:", err)
			return 1
		}
	}
	if setup != nil {
		if err := setup(srv); err != nil {
			fmt.Fprintln(os.Stderr, "FAIL:", err)
			return 1
		}
	}
	return m.Run()
}
