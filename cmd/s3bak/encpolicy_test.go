package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/s3bak/s3bak/pkg/faultproxy"
	"github.com/s3bak/s3bak/pkg/miniotest"
	"github.com/s3bak/s3bak/pkg/preflight"
)

// createsUnencrypted matches what a bucket policy that denies unencrypted
// uploads denies: a request that creates an object — PutObject, or the
// CreateMultipartUpload that starts one (its parts carry no header and are
// judged by it) — without x-amz-server-side-encryption. That is the AWS
// documentation's example policy for requiring SSE
// (https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingServerSideEncryption.html,
// "DenyIncorrectEncryptionHeader" and "DenyUnEncryptedObjectUploads":
// Deny s3:PutObject when s3:x-amz-server-side-encryption is Null or not the
// required value). MinIO's root user, which the tests sign as, ignores
// bucket policies, so the proxy in front of MinIO plays the policy.
// PUTs of a subresource (?retention) are other actions and pass.
func createsUnencrypted(want string) func(*http.Request) bool {
	return func(r *http.Request) bool {
		q, _ := url.ParseQuery(r.URL.RawQuery)
		creates := (r.Method == http.MethodPut && !q.Has("partNumber") && !q.Has("retention") && !q.Has("legal-hold") && !q.Has("tagging")) ||
			(r.Method == http.MethodPost && q.Has("uploads"))
		return creates && r.Header.Get("X-Amz-Server-Side-Encryption") != want
	}
}

// kmsMinIO starts a MinIO whose KMS has the static key s3bak-test.
func kmsMinIO(t *testing.T) *miniotest.Server {
	t.Helper()
	key := make([]byte, 32)
	rand.Read(key)
	server, err := miniotest.Start(t.TempDir(), "MINIO_KMS_SECRET_KEY=s3bak-test:"+base64.StdEncoding.EncodeToString(key))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(server.Stop)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := server.MakeBucket(ctx, "enc"); err != nil {
		t.Fatal(err)
	}
	return server
}

// TestBucketPolicyDenyingUnencryptedPutsPasses runs what a node does —
// preflight, two backups (small files in packs, a large file in parts),
// verify, purge and restore — with --sse aws:kms behind a policy that
// denies unencrypted uploads: nothing is refused. Without --sse the first
// write is refused (AccessDenied), so the policy does bite. Preflight
// proves the KMS key usable, and fails naming a key that is not.
func TestBucketPolicyDenyingUnencryptedPutsPasses(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testDeadlineLock)
	defer cancel()
	server := kmsMinIO(t)
	p, err := faultproxy.New(server.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	denied := p.Add(faultproxy.Rule{Match: createsUnencrypted("aws:kms"), Fault: faultproxy.Status(http.StatusForbidden)})
	creates := p.Add(faultproxy.Rule{Match: createsUnencrypted("")})

	n := buildNode(t)
	node := []string{"--bucket", "enc", "--cluster", "prod", "--node", "cass-1", "--endpoint-url", p.URL}
	sse := []string{"--sse", "aws:kms", "--sse-kms-key-id", "s3bak-test"}
	with := func(args ...string) []string { return append(append(args, node...), sse...) }

	r := mustRunCtx(t, ctx, with("preflight", "--output", "json")...)
	enc := preflightCheck(t, r.stdout, preflight.CheckEncryption)
	if enc.Status != preflight.StatusPass || !strings.Contains(enc.Detail, "KMS key s3bak-test usable") {
		t.Errorf("preflight's encryption check: %+v", enc)
	}
	r = runCtx(t, ctx, append(append([]string{"preflight", "--output", "json"}, node...), "--sse", "aws:kms", "--sse-kms-key-id", "no-such-key")...)
	wantExit(t, r, 1)
	if c := preflightCheck(t, r.stdout, preflight.CheckEncryption); c.Status != preflight.StatusFail || !strings.Contains(c.Detail, "no-such-key is not usable") {
		t.Errorf("preflight with a missing KMS key: %+v", c)
	}

	backup := func(tag string) {
		args := append([]string{"backup", "--tag", tag, "--chunk-size", "1MiB", "--part-size", "5MiB"}, node...)
		for _, d := range n.dataDirs {
			args = append(args, "--data-dir", d)
		}
		mustRunCtx(t, ctx, append(args, sse...)...)
	}
	backup(n.tag)
	snapshotAgain(t, n, "day2")
	backup("day2")
	mustRunCtx(t, ctx, with("verify", "--deep")...)
	mustRunCtx(t, ctx, with("purge", "--keep-last", "1", "--grace", "0s")...)
	target := filepath.Join(t.TempDir(), "restore")
	mustRunCtx(t, ctx, with("restore", "--target", target)...)
	compareTree(t, target, n.want)
	if denied.Applied() != 0 {
		t.Fatalf("the policy refused %d of s3bak's writes", denied.Applied())
	}
	if creates.Seen() < 8 {
		t.Fatalf("only %d writes went through the policy", creates.Seen())
	}

	// Without --sse the policy refuses, naming the write.
	r = runCtx(t, ctx, append([]string{"backup", "--tag", "day2", "--again", "--skip-preflight", "--data-dir", n.dataDirs[0], "--data-dir", n.dataDirs[1]}, node...)...)
	if r.code == 0 || denied.Applied() == 0 || !strings.Contains(r.stderr, "access denied") {
		t.Fatalf("an unencrypted backup passed the policy: exit %d, %d refused\n%s", r.code, denied.Applied(), r.stderr)
	}
}

// preflightCheck finds check id in preflight's JSON report.
func preflightCheck(t *testing.T, out, id string) preflight.Check {
	t.Helper()
	var rep preflight.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("preflight output: %v\n%s", err, out)
	}
	c, ok := rep.Check(id)
	if !ok {
		t.Fatalf("preflight has no %s check:\n%s", id, out)
	}
	return c
}

// TestPreflightReportsObjectLock: on a bucket without Object Lock the
// object-lock check passes saying so, unless --retain-days asks for
// retention (then it fails, exit 1); on an Object Lock bucket it passes.
// The bucket's default encryption is reported ("no default encryption").
func TestPreflightReportsObjectLock(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), testDeadlineLock)
	defer cancel()
	plain, locked := newBucket(t), newLockBucket(t)
	args := func(bucket string, more ...string) []string {
		return append([]string{"preflight", "--output", "json", "--bucket", bucket, "--cluster", "prod", "--node", "cass-1"}, more...)
	}
	r := mustRunCtx(t, ctx, args(plain)...)
	if c := preflightCheck(t, r.stdout, preflight.CheckObjectLock); c.Status != preflight.StatusPass || !strings.Contains(c.Detail, "not configured") {
		t.Errorf("object-lock on a plain bucket: %+v", c)
	}
	if c := preflightCheck(t, r.stdout, preflight.CheckEncryption); c.Status != preflight.StatusPass || !strings.Contains(c.Detail, "no default encryption") {
		t.Errorf("encryption on a plain bucket: %+v", c)
	}
	r = runCtx(t, ctx, args(plain, "--retain-days", "3")...)
	wantExit(t, r, 1)
	if c := preflightCheck(t, r.stdout, preflight.CheckObjectLock); c.Status != preflight.StatusFail || !strings.Contains(c.Hint, "object-lock-enabled-for-bucket") {
		t.Errorf("object-lock on a plain bucket with --retain-days: %+v", c)
	}
	r = mustRunCtx(t, ctx, args(locked, "--retain-days", "3")...)
	if c := preflightCheck(t, r.stdout, preflight.CheckObjectLock); c.Status != preflight.StatusPass || !strings.Contains(c.Detail, "backups are retained") {
		t.Errorf("object-lock on an Object Lock bucket: %+v", c)
	}
}
