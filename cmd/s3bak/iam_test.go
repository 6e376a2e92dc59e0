package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/s3bak/s3bak/pkg/catalog"
	"github.com/s3bak/s3bak/pkg/miniotest"
)

// iamPrefix is the --prefix the policies are tested under (PREFIX in
// docs/iam/*.json).
const iamPrefix = "backups"

// rolePolicy reads docs/iam/<role>.json, the file the README points to,
// with BUCKET and PREFIX filled in, compacted for STS.
func rolePolicy(t *testing.T, role, bucket string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "iam", role+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Version   string
		Statement []struct {
			Sid      string
			Effect   string
			Action   any
			Resource any
		}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil || doc.Version != "2012-10-17" || len(doc.Statement) == 0 {
		t.Fatalf("docs/iam/%s.json: %v (version %q, %d statements)", role, err, doc.Version, len(doc.Statement))
	}
	s := strings.NewReplacer("arn:aws:s3:::BUCKET", "arn:aws:s3:::"+bucket, "/PREFIX/", "/"+iamPrefix+"/").Replace(string(b))
	if strings.Contains(s, "BUCKET") || strings.Contains(s, "PREFIX") {
		t.Fatalf("docs/iam/%s.json: a placeholder is left: %s", role, s)
	}
	var out bytes.Buffer
	if err := json.Compact(&out, []byte(s)); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

// assumeRole asks MinIO's STS, as the root user, for temporary credentials
// restricted to policy (a session policy: the root user's rights
// intersected with it, which leaves exactly the policy). It returns the
// environment a process signs with.
func assumeRole(t *testing.T, policy string) []string {
	t.Helper()
	c := sts.New(sts.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(minio.URL),
		Credentials: credentials.NewStaticCredentialsProvider(miniotest.AccessKey, miniotest.SecretKey, ""),
	})
	out, err := c.AssumeRole(context.Background(), &sts.AssumeRoleInput{
		RoleArn: aws.String("arn:minio:iam:::role/s3bak-test"), RoleSessionName: aws.String("s3bak-iam-test"),
		Policy: aws.String(policy), DurationSeconds: aws.Int32(3600),
	})
	if err != nil {
		t.Fatalf("STS AssumeRole with policy %s: %v", policy, err)
	}
	cr := out.Credentials
	return []string{
		"AWS_ACCESS_KEY_ID=" + aws.ToString(cr.AccessKeyId),
		"AWS_SECRET_ACCESS_KEY=" + aws.ToString(cr.SecretAccessKey),
		"AWS_SESSION_TOKEN=" + aws.ToString(cr.SessionToken),
	}
}

// TestREADMEShowsTheIAMPolicyFiles: the README's policies are the files
// TestIAMPolicies tests, verbatim.
func TestREADMEShowsTheIAMPolicyFiles(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join("..", "..", "docs", "iam", "*.json"))
	if err != nil || len(files) != 4 {
		t.Fatalf("docs/iam: %v %v, want backup, restore, purge and preflight-ec2", files, err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !json.Valid(b) {
			t.Errorf("%s is not JSON", f)
		}
		if !bytes.Contains(readme, []byte("```json\n"+string(b)+"```\n")) {
			t.Errorf("README.md does not show %s as it is", f)
		}
	}
}

// asRole runs the built binary with a role's temporary credentials.
func asRole(t *testing.T, creds []string, args ...string) result {
	t.Helper()
	return asRoleCtx(t, context.Background(), creds, args...)
}

// TestIAMPolicies runs the commands under each role's policy of docs/iam/
// (the README's policies) with MinIO STS session credentials: the backup
// role backs up, lists and verifies but cannot purge (it deletes only its
// lock and markers); the restore role restores, lists and verifies but
// cannot back up or purge; the purge role purges. Preflight's permissions check passes for the
// backup role and names the missing actions for the restore role.
func TestIAMPolicies(t *testing.T) {
	t.Parallel()
	n := buildNode(t)
	n.extra = []string{"--prefix", iamPrefix}
	bucket := newBucket(t)
	roles := map[string][]string{}
	for _, role := range []string{"backup", "restore", "purge"} {
		roles[role] = assumeRole(t, rolePolicy(t, role, bucket))
	}
	node := []string{"--bucket", bucket, "--prefix", iamPrefix, "--cluster", "prod", "--node", "cass-1"}
	cmd := func(args ...string) []string { return append(args, node...) }
	denied := func(t *testing.T, r result, what string) {
		t.Helper()
		if r.code == 0 {
			t.Fatalf("%s succeeded, want it denied\nstdout: %s\nstderr: %s", what, r.stdout, r.stderr)
		}
		if !strings.Contains(strings.ToLower(r.stderr), "access denied") && !strings.Contains(r.stderr, "AccessDenied") {
			t.Fatalf("%s failed, but not for access: exit %d\nstderr: %s", what, r.code, r.stderr)
		}
	}
	ok := func(t *testing.T, r result, what string) {
		t.Helper()
		if r.code != 0 {
			t.Fatalf("%s: exit %d\nstdout: %s\nstderr: %s", what, r.code, r.stdout, r.stderr)
		}
	}

	// The restore role: preflight names what a backup would miss, and a
	// backup stops there, before anything is written.
	r := asRole(t, roles["restore"], cmd("preflight")...)
	wantExit(t, r, 1, "missing s3:PutObject", "missing s3:DeleteObject")
	if strings.Contains(r.stdout, "missing s3:GetObject") || strings.Contains(r.stdout, "missing s3:ListBucketMultipartUploads") {
		t.Errorf("restore role: preflight names an action the role has:\n%s", r.stdout)
	}
	r = asRole(t, roles["restore"], n.backupArgs(bucket)...)
	denied(t, r, "backup as the restore role")
	if !strings.Contains(r.stderr, "preflight permissions check failed") {
		t.Errorf("backup as the restore role did not stop at the preflight: %s", r.stderr)
	}
	// Past the preflight, the refusal names the action too.
	r = asRole(t, roles["restore"], append(n.backupArgs(bucket), "--skip-preflight")...)
	denied(t, r, "backup --skip-preflight as the restore role")
	if !strings.Contains(loggedText(r.stderr), "the policy must allow s3:PutObject on arn:aws:s3:::"+bucket+"/"+iamPrefix+"/prod/cass-1/") {
		t.Errorf("backup as the restore role: the error does not name s3:PutObject: %s", r.stderr)
	}
	// The backup role without s3:ListBucketMultipartUploads (the README's
	// policy before this test): preflight names it instead of passing.
	lacking := strings.Replace(rolePolicy(t, "backup", bucket), `"s3:ListBucketMultipartUploads"`, `"s3:ListBucketVersions"`, 1)
	r = asRole(t, assumeRole(t, lacking), cmd("preflight")...)
	wantExit(t, r, 1, "ListMultipartUploads denied: missing s3:ListBucketMultipartUploads")
	if strings.Contains(r.stdout, "missing s3:PutObject") || strings.Contains(r.stdout, "missing s3:DeleteObject") {
		t.Errorf("backup role lacking only ListBucketMultipartUploads: preflight names more:\n%s", r.stdout)
	}

	// The backup role.
	ok(t, asRole(t, roles["backup"], cmd("preflight")...), "preflight as the backup role")
	ok(t, asRole(t, roles["backup"], n.backupArgs(bucket)...), "backup as the backup role")
	n.tag = "older" // a second backup, so that a purge has something to delete
	ok(t, asRole(t, roles["backup"], n.backupArgs(bucket)...), "second backup as the backup role")
	r = asRole(t, roles["backup"], cmd("list", "--output", "json")...)
	ok(t, r, "list as the backup role")
	var sums []catalog.Summary
	if err := json.Unmarshal([]byte(r.stdout), &sums); err != nil || len(sums) != 2 {
		t.Fatalf("list: %v %s", err, r.stdout)
	}
	ok(t, asRole(t, roles["backup"], cmd("verify", "--deep")...), "verify as the backup role")
	ok(t, asRole(t, roles["backup"], cmd("index", "rebuild")...), "index rebuild as the backup role")
	for _, role := range []string{"backup", "restore"} {
		ok(t, asRole(t, roles[role], cmd("status")...), "status as the "+role+" role")
	}
	purge := cmd("purge", "--keep-last", "1", "--grace", "0s")
	r = asRole(t, roles["backup"], purge...)
	denied(t, r, "purge as the backup role")
	if want := "the policy must allow s3:DeleteObject on arn:aws:s3:::" + bucket + "/" + iamPrefix + "/prod/cass-1/backups/"; !strings.Contains(loggedText(r.stderr), want) {
		t.Errorf("purge as the backup role: not refused deleting a manifest, naming the action (%q): %s", want, r.stderr)
	}

	// The restore role reads.
	target := filepath.Join(t.TempDir(), "restore")
	ok(t, asRole(t, roles["restore"], cmd("restore", "--target", target, "--backup", sums[len(sums)-1].ID)...), "restore as the restore role")
	ok(t, asRole(t, roles["restore"], cmd("list")...), "list as the restore role")
	ok(t, asRole(t, roles["restore"], cmd("verify", "--deep")...), "verify as the restore role")
	r = asRole(t, roles["restore"], purge...)
	denied(t, r, "purge as the restore role")
	if want := "the policy must allow s3:PutObject on arn:aws:s3:::" + bucket + "/" + iamPrefix + "/prod/cass-1/lock.json"; !strings.Contains(loggedText(r.stderr), want) {
		t.Errorf("purge as the restore role: the error does not name the action (%q): %s", want, r.stderr)
	}

	// The purge role purges.
	ok(t, asRole(t, roles["purge"], purge...), "purge as the purge role")
	r = mustRun(t, cmd("list", "--output", "json")...)
	if err := json.Unmarshal([]byte(r.stdout), &sums); err != nil || len(sums) != 1 {
		t.Fatalf("list after purge: %v %s", err, r.stdout)
	}
	mustRun(t, cmd("verify", "--deep")...)
	// No probe and no lock is left behind.
	for _, k := range bucketKeys(t, bucket) {
		if strings.Contains(k, "preflight-probe-") || strings.HasSuffix(k, "/lock.json") {
			t.Errorf("left in the bucket: %s", k)
		}
	}
}
