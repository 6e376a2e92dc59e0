package main

// End-to-end tests of the preflight through the BUILT BINARY (s3bakBin)
// and the real aws-sdk-go-v2 clients, configured only the way an operator
// would: flags and the standard AWS environment.
//
//   - IMDS and EC2 are the fakes of pkg/preflight/fakeaws (the same ones the
//     package's own tests use), httptest servers on 127.0.0.1 speaking the
//     real wire formats, reached through AWS_EC2_METADATA_SERVICE_ENDPOINT
//     and AWS_ENDPOINT_URL_EC2.
//   - S3 is a real MinIO, but NOT as a custom endpoint (with a custom
//     endpoint the route checks are N/A by design). Not TestMain's MinIO:
//     that one has no region configured, so it sends no x-amz-bucket-region
//     header, which real S3 sends on every HeadBucket; preflight's region
//     check would then be UNKNOWN and no scenario could pass. These tests
//     start their own MinIO with MINIO_SITE_REGION=us-east-1
//     (regionalMinIO).
//   - The binary runs with --region us-east-1 --path-style and no
//     AWS_ENDPOINT_URL_S3, so its S3 client addresses
//     https://s3.us-east-1.amazonaws.com/BUCKET/… exactly as on AWS.
//     HTTPS_PROXY points at an in-test CONNECT proxy (s3Front) that tunnels
//     only that host to a local TLS server holding a certificate for it,
//     issued by a test CA given to the binary as AWS_CA_BUNDLE. The TLS
//     server reverse-proxies to MinIO keeping the Host header: MinIO checks
//     the SigV4 signature the SDK computed for s3.us-east-1.amazonaws.com
//     (with MinIO's own host:port instead, HeadBucket gets 403 — tried), and
//     without MINIO_DOMAIN it reads every request as path-style, whatever
//     the Host.
//   - Go's proxy-from-environment never proxies loopback addresses, so the
//     fakes on 127.0.0.1 are reached directly; HTTP_PROXY points at the same
//     proxy, which refuses and records anything that is not the S3 tunnel:
//     nothing may leave for the internet.
//   - DNS for the analysis comes from --resolve
//     s3.us-east-1.amazonaws.com=52.216.5.5,54.231.1.1 (addresses inside the
//     fake S3 prefix list); the connection itself never resolves the name,
//     it is the proxy's CONNECT authority.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/s3bak/s3bak/pkg/manifest"
	"github.com/s3bak/s3bak/pkg/miniotest"
	"github.com/s3bak/s3bak/pkg/preflight/fakeaws"
	"github.com/s3bak/s3bak/pkg/testfixture"
	"github.com/s3bak/s3bak/pkg/transfer"
)

// awsS3Host is the host the binary's S3 client uses for --region us-east-1
// --path-style.
const awsS3Host = "s3.us-east-1.amazonaws.com"

// s3Addrs are what "DNS" answers for awsS3Host: inside the fake S3 prefix
// list (fakeaws.S3CIDRs).
const s3Addrs = "52.216.5.5,54.231.1.1"

// s3Front carries the binary's S3 traffic for https://awsS3Host to MinIO.
type s3Front struct {
	caFile   string // PEM of the CA that issued the TLS server's certificate
	proxyURL string

	mu       sync.Mutex
	tunnels  int            // CONNECTs to awsS3Host:443 accepted
	refused  []string       // anything else the proxy was asked for
	hosts    map[string]int // Host headers of the requests that reached the TLS server
	requests []string       // "METHOD /path?query" of those requests
}

func newS3Front(t *testing.T, backend *miniotest.Server) *s3Front {
	t.Helper()
	f := &s3Front{hosts: map[string]int{}}
	caCert, caKey := newTestCA(t)
	f.caFile = filepath.Join(t.TempDir(), "aws-ca-bundle.pem")
	if err := os.WriteFile(f.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caCert.Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	minioURL, err := url.Parse(backend.URL)
	if err != nil {
		t.Fatal(err)
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(minioURL)
			// SigV4 signed "host: s3.us-east-1.amazonaws.com": MinIO must
			// see that Host to verify the signature. No X-Forwarded-*.
			pr.Out.Host = pr.In.Host
		},
	}
	tlsSrv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.hosts[r.Host]++
		f.requests = append(f.requests, r.Method+" "+r.URL.RequestURI())
		f.mu.Unlock()
		if r.Host != awsS3Host {
			http.Error(w, "this test server only serves "+awsS3Host, http.StatusMisdirectedRequest)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	tlsSrv.TLS = &tls.Config{Certificates: []tls.Certificate{newLeafCert(t, caCert, caKey, awsS3Host, "*."+awsS3Host)}}
	tlsSrv.StartTLS()
	t.Cleanup(tlsSrv.Close)
	proxy := httptest.NewServer(f.proxyHandler(tlsSrv.Listener.Addr().String()))
	t.Cleanup(proxy.Close)
	f.proxyURL = proxy.URL
	return f
}

// proxyHandler tunnels CONNECT awsS3Host:443 to upstream, the TLS server;
// it refuses (and records) everything else.
func (f *s3Front) proxyHandler(upstream string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		ok := r.Method == http.MethodConnect && r.Host == awsS3Host+":443"
		if ok {
			f.tunnels++
		} else {
			f.refused = append(f.refused, r.Method+" "+r.Host+r.URL.Path)
		}
		f.mu.Unlock()
		if !ok {
			http.Error(w, "the test proxy only tunnels to "+awsS3Host+":443", http.StatusForbidden)
			return
		}
		up, err := net.Dial("tcp", upstream)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			up.Close()
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if _, err := conn.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n")); err != nil {
			conn.Close()
			up.Close()
			return
		}
		var once sync.Once
		closeBoth := func() { once.Do(func() { conn.Close(); up.Close() }) }
		go func() { io.Copy(up, brw); closeBoth() }() // brw first hands over what the server had buffered
		go func() { io.Copy(conn, up); closeBoth() }()
	}
}

// check asserts that the binary's S3 traffic went through the tunnel, as
// awsS3Host, and that nothing tried to go anywhere else.
func (f *s3Front) check(t *testing.T) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.refused) > 0 {
		t.Errorf("the binary tried to reach, past the fakes: %v", f.refused)
	}
	if f.tunnels == 0 || f.hosts[awsS3Host] == 0 {
		t.Errorf("no S3 request went through the tunnel as %s (tunnels %d, hosts %v)", awsS3Host, f.tunnels, f.hosts)
	}
	for h := range f.hosts {
		if h != awsS3Host {
			t.Errorf("a request reached the TLS server for host %q", h)
		}
	}
}

// sawRequest reports whether a request through the tunnel had method and
// a URI containing part.
func (f *s3Front) sawRequest(method, part string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.requests {
		m, uri, _ := strings.Cut(r, " ")
		if m == method && strings.Contains(uri, part) {
			return true
		}
	}
	return false
}

func newTestCA(t *testing.T) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "s3bak preflight test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func newLeafCert(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, names ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// regionalMinIO starts a MinIO of its own for one test, in region us-east-1
// like the bucket of a node in us-east-1: it names the region in
// x-amz-bucket-region as S3 does (see the top of this file).
func regionalMinIO(t *testing.T) *miniotest.Server {
	t.Helper()
	srv, err := miniotest.Start(t.TempDir(), "MINIO_SITE_REGION=us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	return srv
}

// regionalBucket makes a bucket named after the test on srv.
func regionalBucket(t *testing.T, srv *miniotest.Server) string {
	t.Helper()
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(name) > 60 {
		name = strings.TrimRight(name[:60], "-")
	}
	if err := srv.MakeBucket(context.Background(), name); err != nil {
		t.Fatal(err)
	}
	return name
}

// regionalKeys lists the keys under prefix in a bucket of srv, directly
// (not through the binary's path).
func regionalKeys(t *testing.T, srv *miniotest.Server, bucket, prefix string) []string {
	t.Helper()
	c, err := transfer.New(context.Background(), transfer.Options{Bucket: bucket, EndpointURL: srv.URL, Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for o, err := range c.List(context.Background(), prefix) {
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, o.Key)
	}
	return keys
}

// imdsMode says how the node's IMDS behaves.
type imdsMode int

const (
	imdsUp     imdsMode = iota
	imdsClosed          // nothing listens: connection refused, as off EC2
	imdsHangs           // accepts and never answers
)

// fakeNode is one EC2 world for the binary: the fake IMDS and EC2 servers.
type fakeNode struct {
	imds    *fakeaws.IMDS
	ec2     *fakeaws.EC2
	imdsURL string
	ec2URL  string
}

// newFakeNode starts fresh servers for one scenario; vpc is not changed
// once they run.
func newFakeNode(t *testing.T, vpc *fakeaws.EC2, mode imdsMode) *fakeNode {
	t.Helper()
	n := &fakeNode{imds: &fakeaws.IMDS{Meta: fakeaws.InstanceMeta()}, ec2: vpc}
	ec2S := httptest.NewServer(n.ec2)
	t.Cleanup(ec2S.Close)
	n.ec2URL = ec2S.URL
	switch mode {
	case imdsUp:
		s := httptest.NewServer(n.imds)
		t.Cleanup(s.Close)
		n.imdsURL = s.URL
	case imdsClosed:
		n.imdsURL = "http://" + closedPort(t)
	case imdsHangs:
		done := make(chan struct{})
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-done:
			}
		}))
		t.Cleanup(s.Close)
		t.Cleanup(func() { close(done) }) // runs first: frees the handlers so Close returns
		n.imdsURL = s.URL
	}
	return n
}

// env is the binary's whole environment: this machine's, minus every AWS_*,
// S3BAK_* and proxy variable (TestMain's AWS_ENDPOINT_URL_S3 and
// AWS_EC2_METADATA_DISABLED=true among them), plus MinIO's credentials and
// the fakes.
func (n *fakeNode) env(front *s3Front) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch uk := strings.ToUpper(k); {
		case strings.HasPrefix(uk, "AWS_"), strings.HasPrefix(uk, "S3BAK_") && uk != "S3BAK_TESTDATA",
			uk == "HTTP_PROXY", uk == "HTTPS_PROXY", uk == "NO_PROXY", uk == "ALL_PROXY", uk == "REQUEST_METHOD":
			continue
		}
		env = append(env, kv)
	}
	return append(env,
		"AWS_ACCESS_KEY_ID="+miniotest.AccessKey,
		"AWS_SECRET_ACCESS_KEY="+miniotest.SecretKey,
		"AWS_CONFIG_FILE="+os.DevNull,
		"AWS_SHARED_CREDENTIALS_FILE="+os.DevNull,
		"AWS_CA_BUNDLE="+front.caFile,
		"AWS_ENDPOINT_URL_EC2="+n.ec2URL,
		"AWS_EC2_METADATA_SERVICE_ENDPOINT="+n.imdsURL,
		"AWS_EC2_METADATA_DISABLED=false",
		"HTTPS_PROXY="+front.proxyURL,
		"HTTP_PROXY="+front.proxyURL,
	)
}

// runBin runs the built binary as an operator on the node would, with the
// global flags that make its S3 host the real AWS one.
func (n *fakeNode) runBin(t *testing.T, front *s3Front, args ...string) (result, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	args = append(args, "--region", "us-east-1", "--path-style", "--log-format", "json", "--no-progress")
	cmd := exec.CommandContext(ctx, s3bakBin, args...)
	cmd.Env = n.env(front)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	r := result{stdout: out.String(), stderr: errb.String()}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit) && ctx.Err() == nil:
		r.code = exit.ExitCode()
	default:
		t.Fatalf("s3bak %s: %v (after %s)\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, took, r.stdout, r.stderr)
	}
	return r, took
}

// tableStatus reads each check's status from the preflight table.
func tableStatus(out string) map[string]string {
	st := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) >= 2 {
			st[f[0]] = f[1]
		}
	}
	return st
}

type preflightJSON struct {
	Verdict string `json:"verdict"`
	Checks  []struct {
		ID, Status, Detail, Hint string
	} `json:"checks"`
	Facts struct {
		Host             string   `json:"host"`
		CustomEndpoint   string   `json:"customEndpoint"`
		CredentialSource string   `json:"credentialSource"`
		InstanceID       string   `json:"instanceId"`
		RouteTableID     string   `json:"routeTableId"`
		EndpointIDs      []string `json:"endpointIds"`
	} `json:"facts"`
}

func denied(action string) *fakeaws.EC2 {
	vpc := fakeaws.GatewayEndpointVPC()
	vpc.Deny = map[string]bool{action: true}
	return vpc
}

// TestPreflightBinaryAgainstFakeAWS runs `s3bak preflight` (table and json)
// for each scenario and checks exit code, verdict, statuses and what the
// report names.
func TestPreflightBinaryAgainstFakeAWS(t *testing.T) {
	t.Parallel()
	s3srv := regionalMinIO(t)
	bucket := regionalBucket(t, s3srv)
	tests := []struct {
		name    string
		vpc     *fakeaws.EC2
		imds    imdsMode
		code    int
		verdict string
		status  map[string]string // check id → status
		phrases []string          // in the table output
	}{
		{name: "gateway-endpoint", vpc: fakeaws.GatewayEndpointVPC(), code: 0, verdict: "pass",
			status: map[string]string{"credentials": "PASS", "imds": "PASS", "bucket": "PASS", "region": "PASS", "dns": "PASS",
				"route": "PASS", "endpoint": "PASS", "cost": "PASS"},
			phrases: []string{awsS3Host + " → 52.216.5.5, 54.231.1.1 (--resolve override)", "rtb-0priv", "pl-63a5400a",
				"routed to vpce-0s3", "S3 gateway endpoint vpce-0s3", "verdict: pass"}},
		{name: "nat-only", vpc: fakeaws.NATOnlyVPC(), code: 1, verdict: "fail",
			status:  map[string]string{"imds": "PASS", "bucket": "PASS", "dns": "PASS", "route": "FAIL", "endpoint": "FAIL", "cost": "WARN"},
			phrases: []string{"would traverse NAT gateway nat-0123", "create-vpc-endpoint --vpc-id vpc-0abc", "verdict: fail"}},
		{name: "unauthorized-DescribeRouteTables", vpc: denied("DescribeRouteTables"), code: 2, verdict: "unknown",
			status:  map[string]string{"imds": "PASS", "route": "UNKNOWN", "endpoint": "N/A"},
			phrases: []string{"missing IAM permission ec2:DescribeRouteTables", "UnauthorizedOperation", "grant ec2:DescribeRouteTables"}},
		{name: "unauthorized-GetManagedPrefixListEntries", vpc: denied("GetManagedPrefixListEntries"), code: 2, verdict: "unknown",
			status:  map[string]string{"route": "UNKNOWN"},
			phrases: []string{"missing IAM permission ec2:GetManagedPrefixListEntries"}},
		{name: "unauthorized-DescribeVpcEndpoints", vpc: denied("DescribeVpcEndpoints"), code: 2, verdict: "unknown",
			status:  map[string]string{"route": "UNKNOWN"},
			phrases: []string{"missing IAM permission ec2:DescribeVpcEndpoints"}},
		{name: "imds-connection-refused", vpc: fakeaws.GatewayEndpointVPC(), imds: imdsClosed, code: 2, verdict: "unknown",
			status: map[string]string{"credentials": "PASS", "imds": "UNKNOWN", "bucket": "PASS", "region": "N/A", "dns": "PASS",
				"route": "N/A", "endpoint": "N/A", "policy": "N/A", "cost": "N/A"},
			phrases: []string{"IMDSv2 gave no instance identity", "needs the instance identity from IMDS"}},
		{name: "imds-hangs", vpc: fakeaws.GatewayEndpointVPC(), imds: imdsHangs, code: 2, verdict: "unknown",
			status:  map[string]string{"imds": "UNKNOWN", "bucket": "PASS", "route": "N/A", "endpoint": "N/A"},
			phrases: []string{"IMDSv2 gave no instance identity (deadline 2s)"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			front := newS3Front(t, s3srv)
			n := newFakeNode(t, tc.vpc, tc.imds)
			args := []string{"preflight", "--bucket", bucket, "--resolve", awsS3Host + "=" + s3Addrs}

			r, took := n.runBin(t, front, args...)
			t.Logf("s3bak preflight (%s):\n%s%s", took.Round(time.Millisecond), r.stdout, r.stderr)
			wantExit(t, r, tc.code, tc.phrases...)
			got := tableStatus(r.stdout)
			for id, st := range tc.status {
				if got[id] != st {
					t.Errorf("table: %s is %q, want %s", id, got[id], st)
				}
			}
			// No long hang without IMDS: the identity lookup has its own
			// 2 s deadline and the SDK's retries must not stretch it.
			if took > 15*time.Second {
				t.Errorf("preflight took %s", took)
			}

			r, _ = n.runBin(t, front, append(args, "--output", "json")...)
			wantExit(t, r, tc.code)
			var rep preflightJSON
			if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
				t.Fatalf("--output json: %v\n%s", err, r.stdout)
			}
			if rep.Verdict != tc.verdict {
				t.Errorf("json verdict %q, want %q", rep.Verdict, tc.verdict)
			}
			for _, c := range rep.Checks {
				if want, ok := tc.status[c.ID]; ok && c.Status != want {
					t.Errorf("json: %s is %s, want %s (%s)", c.ID, c.Status, want, c.Detail)
				}
			}
			// Judged as AWS: the real host, no custom endpoint, MinIO's
			// keys from the environment.
			f := rep.Facts
			if f.Host != awsS3Host || f.CustomEndpoint != "" || f.CredentialSource != "EnvConfigCredentials" {
				t.Errorf("facts: %+v", f)
			}
			if tc.name == "gateway-endpoint" && (f.InstanceID != fakeaws.InstanceID || f.RouteTableID != fakeaws.RouteTableID ||
				len(f.EndpointIDs) != 1 || f.EndpointIDs[0] != fakeaws.GatewayEndpointID) {
				t.Errorf("facts: %+v", f)
			}

			// The fakes were reached through the standard variables, S3
			// through the tunnel.
			front.check(t)
			switch {
			case tc.imds != imdsUp:
				if n.ec2.Total() != 0 {
					t.Errorf("EC2 asked %v without an instance identity", n.ec2.Calls())
				}
			case n.imds.Calls() == 0 || n.ec2.Called("DescribeRouteTables") == 0:
				t.Errorf("the binary did not reach the fakes: imds %d calls, ec2 %v", n.imds.Calls(), n.ec2.Calls())
			}
		})
	}
}

// smallNode is a small Cassandra node: one real table of the fixture, plus
// a random file larger than a part, so the upload is multipart.
func smallNode(t *testing.T) *node {
	t.Helper()
	td, err := testfixture.Testdata()
	if err != nil {
		t.Fatal(err)
	}
	tables, err := testfixture.LegacyTables(td, "na")
	if err != nil || len(tables) == 0 {
		t.Fatalf("fixture tables: %v", err)
	}
	n := &node{dataDirs: []string{filepath.Join(t.TempDir(), "data")}, tag: "nightly", want: map[string][]byte{}}
	snap, err := testfixture.WriteSnapshot(n.dataDirs[0], n.tag, tables[0], true)
	if err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 6<<20+777)
	rand.Read(big)
	writeFile(t, filepath.Join(snap, "na-9-big-Data.db"), big)
	n.expect(t, snap, tables[0].Keyspace+"/"+tables[0].Dir())
	return n
}

// TestBackupBinaryPreflightGate: `s3bak backup` runs the preflight first.
// A NAT-only subnet stops it with exit 4 before a byte is written;
// --allow-nat backs up through the same (AWS-looking) path, and list and
// restore work through it; a gateway endpoint passes the gate; without IMDS
// the gate cannot judge, warns and goes on.
func TestBackupBinaryPreflightGate(t *testing.T) {
	t.Parallel()
	n := smallNode(t)
	s3srv := regionalMinIO(t)
	bucket := regionalBucket(t, s3srv)
	front := newS3Front(t, s3srv)
	nat := newFakeNode(t, fakeaws.NATOnlyVPC(), imdsUp)
	// --again: each run below backs up the same tag once more.
	backup := append(n.backupArgs(bucket), "--resolve", awsS3Host+"="+s3Addrs, "--again")
	nodeArgs := []string{"--bucket", bucket, "--cluster", "prod", "--node", "cass-1"}

	r, _ := nat.runBin(t, front, backup...)
	t.Logf("backup stopped by the preflight:\n%s", r.stderr)
	wantExit(t, r, exitPreflight, "would traverse NAT gateway nat-0123", "create-vpc-endpoint", "fix the route", "--allow-nat")
	if !front.sawRequest(http.MethodHead, "/"+bucket) {
		t.Errorf("the preflight's HeadBucket did not go through the tunnel")
	}
	// Nothing but the run's record, which says why it stopped.
	if keys := regionalKeys(t, s3srv, bucket, ""); len(keys) != 1 || !manifest.IsRunKey(keys[0]) || !strings.HasSuffix(keys[0], "-backup.json") {
		t.Fatalf("a backup stopped by the preflight wrote %v", keys)
	}

	r, _ = nat.runBin(t, front, append(backup, "--allow-nat")...)
	wantExit(t, r, exitOK, "continuing because of --allow-nat", "backup ")
	if keys := regionalKeys(t, s3srv, bucket, "prod/cass-1/backups/"); len(keys) != 1 {
		t.Fatalf("manifests after --allow-nat: %v", keys)
	}
	// The 6 MiB file went up in 5 MiB parts, through the same TLS path.
	if !front.sawRequest(http.MethodPost, "?uploads") || !front.sawRequest(http.MethodPut, "partNumber=2") {
		t.Errorf("no multipart upload went through the tunnel")
	}

	r, _ = nat.runBin(t, front, append([]string{"list", "--output", "json"}, nodeArgs...)...)
	wantExit(t, r, exitOK)
	var list []struct{ Status string }
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 1 || list[0].Status != "complete" {
		t.Fatalf("list: %v %s", err, r.stdout)
	}
	target := filepath.Join(t.TempDir(), "restore")
	r, _ = nat.runBin(t, front, append([]string{"restore", "--target", target}, nodeArgs...)...)
	wantExit(t, r, exitOK)
	compareTree(t, target, n.want)

	gw := newFakeNode(t, fakeaws.GatewayEndpointVPC(), imdsUp)
	r, _ = gw.runBin(t, front, append(backup, "--full")...)
	wantExit(t, r, exitOK, "preflight passed")

	off := newFakeNode(t, fakeaws.GatewayEndpointVPC(), imdsClosed)
	r, took := off.runBin(t, front, backup...)
	wantExit(t, r, exitOK, "preflight could not prove the S3 path; continuing")
	if took > 30*time.Second {
		t.Errorf("backup without IMDS took %s", took)
	}
	if keys := regionalKeys(t, s3srv, bucket, "prod/cass-1/backups/"); len(keys) != 3 {
		t.Fatalf("manifests: %v, want 3", keys)
	}
	front.check(t)
	if nat.ec2.Called("DescribeRouteTables") == 0 || gw.ec2.Called("DescribeRouteTables") == 0 || off.ec2.Total() != 0 {
		t.Errorf("EC2 calls: nat %v, gateway %v, without IMDS %v", nat.ec2.Calls(), gw.ec2.Calls(), off.ec2.Calls())
	}
}
