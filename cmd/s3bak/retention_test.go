package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/s3bak/s3bak/pkg/catalog"
	"github.com/s3bak/s3bak/pkg/manifest"
	"github.com/s3bak/s3bak/pkg/restore"
)

// testDeadlineLock bounds each test of this file and of encpolicy_test.go:
// its runs are cancelled then, and the test fails instead of hanging.
const testDeadlineLock = 5 * time.Minute

// runCtx is s3bak run under ctx.
func runCtx(t *testing.T, ctx context.Context, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(ctx, append(args, "--log-format", "json"), &out, &errb)
	if ctx.Err() != nil {
		t.Fatalf("s3bak %s: past the test's deadline", strings.Join(args, " "))
	}
	return result{code, out.String(), errb.String()}
}

func mustRunCtx(t *testing.T, ctx context.Context, args ...string) result {
	t.Helper()
	r := runCtx(t, ctx, args...)
	if r.code != 0 {
		t.Fatalf("s3bak %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

// asRoleCtx is asRole (the built binary with a role's credentials), killed
// at ctx's deadline.
func asRoleCtx(t *testing.T, ctx context.Context, creds []string, args ...string) result {
	t.Helper()
	cmd := exec.CommandContext(ctx, s3bakBin, append(args, "--log-format", "json")...)
	cmd.Env = append(os.Environ(), creds...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("s3bak %s: past the test's deadline", strings.Join(args, " "))
	}
	r := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return r
}

// newLockBucket is newBucket with S3 Object Lock enabled (MinIO enables
// versioning with it, as S3 does).
func newLockBucket(t *testing.T) string {
	t.Helper()
	name := strings.TrimRight(strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace("l"+t.Name())), "-")
	if len(name) > 50 {
		name = name[:50]
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := rawClient(minio).CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name), ObjectLockEnabledForBucket: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	return name
}

// retentionOf is key's Object Lock retention as MinIO reports it (zero
// when it has none).
func retentionOf(t *testing.T, bucket, key string) (string, time.Time) {
	t.Helper()
	out, err := rawClient(minio).GetObjectRetention(context.Background(), &s3.GetObjectRetentionInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		if strings.Contains(err.Error(), "NoSuchObjectLockConfiguration") {
			return "", time.Time{}
		}
		t.Fatalf("GetObjectRetention %s: %v", key, err)
	}
	return string(out.Retention.Mode), aws.ToTime(out.Retention.RetainUntilDate)
}

// versionsOf lists every version and delete marker under prefix.
func versionsOf(t *testing.T, bucket, prefix string) (versions map[string]int, markers []string) {
	t.Helper()
	versions = map[string]int{}
	p := s3.NewListObjectVersionsPaginator(rawClient(minio), &s3.ListObjectVersionsInput{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range page.Versions {
			versions[aws.ToString(v.Key)]++
		}
		for _, m := range page.DeleteMarkers {
			markers = append(markers, aws.ToString(m.Key))
		}
	}
	return versions, markers
}

// manifestOf reads backup id's manifest of prod/cass-1.
func manifestOf(t *testing.T, bucket, id string) *manifest.Manifest {
	t.Helper()
	return manifestOfNode(t, bucket, manifest.Node{Cluster: "prod", Name: "cass-1"}, id)
}

func manifestOfNode(t *testing.T, bucket string, node manifest.Node, id string) *manifest.Manifest {
	t.Helper()
	m, err := catalog.Load(context.Background(), testClient(t, bucket), node, id)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestObjectLockRetention backs up with --retain-days to a bucket with
// Object Lock: the manifest and every object it references are retained
// (governance) until at least the backup's start plus the days, the lock,
// index, markers and run records are not; a second, differential backup
// with a longer retention extends the reused objects' retention; a purge
// that would remove the first backup cannot, says so, exits 0, deletes an
// unprotected orphan's version outright and leaves no delete marker; and
// the first backup still restores byte-identical.
func TestObjectLockRetention(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), testDeadlineLock)
	defer cancel()
	n := buildNode(t)
	bucket := newLockBucket(t)
	r := mustRunCtx(t, ctx, append(n.backupArgs(bucket), "--retain-days", "2", "--output", "json")...)
	var first backupOutput
	if err := json.Unmarshal([]byte(r.stdout), &first); err != nil {
		t.Fatal(err)
	}
	root := "prod/cass-1/"
	m1 := manifestOf(t, bucket, first.BackupID)
	want1 := m1.Started.Add(48 * time.Hour)
	referenced, err := referencedKeys(manifest.Node{Cluster: "prod", Name: "cass-1"}, restore.Files(m1.Files))
	if err != nil || len(referenced) < 2 { // a pack and the large file
		t.Fatalf("the first backup references only %v", referenced)
	}
	for _, k := range append([]string{root + manifest.ManifestKey(first.BackupID)}, referenced...) {
		mode, until := retentionOf(t, bucket, k)
		if mode != "GOVERNANCE" || until.Before(want1) || until.After(want1.Add(time.Hour)) {
			t.Errorf("%s: retention %s until %s, want GOVERNANCE until %s", k, mode, until, want1)
		}
	}
	for _, k := range bucketKeys(t, bucket) {
		if strings.Contains(k, "/data/") || strings.Contains(k, "/backups/") {
			continue
		}
		if mode, _ := retentionOf(t, bucket, k); mode != "" {
			t.Errorf("%s is retained (%s): only manifests and data are", k, mode)
		}
	}
	if m1.Meta[metaRetainUntil] == "" || m1.Meta[metaRetentionMode] != "GOVERNANCE" {
		t.Errorf("manifest meta %v: no retention recorded (does pkg/backup still call Options.BeforeManifest?)", m1.Meta)
	}

	// A second backup of the same files, retained longer: the objects it
	// reuses are extended to its own expiry.
	snapshotAgain(t, n, "day2")
	n.tag = "day2"
	r = mustRunCtx(t, ctx, append(n.backupArgs(bucket), "--retain-days", "5", "--retention-mode", "governance", "--output", "json")...)
	var second backupOutput
	if err := json.Unmarshal([]byte(r.stdout), &second); err != nil {
		t.Fatal(err)
	}
	if second.Uploaded != 0 {
		t.Fatalf("the second backup uploaded %d contents: want all reused", second.Uploaded)
	}
	want2 := manifestOf(t, bucket, second.BackupID).Started.Add(5 * 24 * time.Hour)
	for _, k := range referenced {
		if mode, until := retentionOf(t, bucket, k); mode != "GOVERNANCE" || until.Before(want2) {
			t.Errorf("%s reused by the second backup: retention %s until %s, want at least %s", k, mode, until, want2)
		}
	}

	// An orphan nobody protects, beside the protected data.
	orphan := root + "data/ff/orphan.raw"
	if _, err := rawClient(minio).PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(orphan),
		Body: strings.NewReader("orphan"), ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c}); err != nil {
		t.Fatal(err)
	}
	node := []string{"--bucket", bucket, "--cluster", "prod", "--node", "cass-1"}
	// A dry run says the same and changes nothing.
	r = mustRunCtx(t, ctx, append([]string{"purge", "--keep-last", "1", "--grace", "0s", "--dry-run"}, node...)...)
	if !strings.Contains(r.stdout, "S3 Object Lock retention kept 1 backup and 0 unreferenced objects") ||
		!strings.Contains(r.stdout, "Object Lock retention (governance) until") {
		t.Errorf("purge --dry-run does not report the retained backup:\n%s", r.stdout)
	}
	if v, _ := versionsOf(t, bucket, orphan); v[orphan] != 1 {
		t.Fatalf("purge --dry-run deleted the orphan")
	}
	r = mustRunCtx(t, ctx, append([]string{"purge", "--keep-last", "1", "--grace", "0s", "--output", "json"}, node...)...)
	var reps []struct {
		Kept     []struct{ ID string } `json:"kept"`
		Removed  []struct{ ID string } `json:"removed"`
		Retained struct {
			Backups int `json:"backups"`
			Objects int `json:"objects"`
			First   []struct {
				Key   string    `json:"key"`
				Mode  string    `json:"mode"`
				Until time.Time `json:"until"`
			} `json:"first"`
		} `json:"retained"`
		ObjectsDeleted int `json:"objects_deleted"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &reps); err != nil || len(reps) != 1 {
		t.Fatalf("purge output: %v\n%s", err, r.stdout)
	}
	rep := reps[0]
	if rep.Retained.Backups != 1 || len(rep.Removed) != 0 || len(rep.Kept) != 2 || len(rep.Retained.First) == 0 ||
		!strings.Contains(rep.Retained.First[0].Key, first.BackupID) {
		t.Errorf("purge report: the first backup is not reported kept for its retention: %+v", rep)
	}
	if rep.ObjectsDeleted != 1 {
		t.Errorf("purge deleted %d objects, want the orphan only", rep.ObjectsDeleted)
	}
	versions, markers := versionsOf(t, bucket, root)
	for _, k := range markers {
		if strings.Contains(k, "/data/") || strings.Contains(k, "/backups/") {
			t.Errorf("purge left a delete marker on %s", k)
		}
	}
	if versions[orphan] != 0 {
		t.Errorf("the orphan has %d versions left", versions[orphan])
	}
	for _, k := range append([]string{root + manifest.ManifestKey(first.BackupID)}, referenced...) {
		if versions[k] == 0 {
			t.Errorf("%s is gone", k)
		}
	}

	target := filepath.Join(t.TempDir(), "restore")
	mustRunCtx(t, ctx, append([]string{"restore", "--target", target, "--backup", first.BackupID}, node...)...)
	n.tag = "nightly"
	compareTree(t, target, n.want)
	mustRunCtx(t, ctx, append([]string{"verify", "--deep", "--backup", first.BackupID}, node...)...)

	// verify: the second backup's objects are retained as long as it is;
	// once its manifest is retained longer (by hand, here), they are
	// reported short — a warning, not a failure.
	var v verifyOutput
	r = mustRunCtx(t, ctx, append([]string{"verify", "--backup", second.BackupID, "--output", "json"}, node...)...)
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || v.Retention == nil {
		t.Fatalf("verify output: %v %s", err, r.stdout)
	}
	if v.Retention.Until.Before(want2) || len(v.Retention.Short) != 0 || v.Retention.Objects != len(referenced) {
		t.Errorf("verify's retention: %+v, want until %s and nothing short", v.Retention, want2)
	}
	later := time.Now().Add(30 * 24 * time.Hour).Truncate(time.Second)
	if _, err := rawClient(minio).PutObjectRetention(ctx, &s3.PutObjectRetentionInput{Bucket: aws.String(bucket),
		Key: aws.String(root + manifest.ManifestKey(second.BackupID)), ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c,
		Retention: &types.ObjectLockRetention{Mode: types.ObjectLockRetentionModeGovernance, RetainUntilDate: &later}}); err != nil {
		t.Fatal(err)
	}
	r = mustRunCtx(t, ctx, append([]string{"verify", "--backup", second.BackupID, "--output", "json"}, node...)...)
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || v.Retention == nil {
		t.Fatalf("verify output: %v %s", err, r.stdout)
	}
	if len(v.Retention.Short) != len(referenced) || !v.OK {
		t.Errorf("verify's retention after the manifest's was extended: %+v (ok %t), want every object short", v.Retention, v.OK)
	}
	r = mustRunCtx(t, ctx, append([]string{"verify", "--backup", second.BackupID}, node...)...)
	if !strings.Contains(r.stdout, "WARNING retention of s3://"+bucket+"/"+referenced[0]) {
		t.Errorf("verify does not warn of %s:\n%s", referenced[0], r.stdout)
	}
}

// TestRetainDaysNeedsObjectLock: --retain-days on a bucket without Object
// Lock stops before anything is written, saying how to enable it.
func TestRetainDaysNeedsObjectLock(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), testDeadlineLock)
	defer cancel()
	n := buildNode(t)
	bucket := newBucket(t)
	r := runCtx(t, ctx, append(n.backupArgs(bucket), "--retain-days", "7")...)
	wantExit(t, r, 1, "has no S3 Object Lock", "object-lock-enabled-for-bucket")
	if keys := listKeys(t, bucket, "prod/cass-1/data/"); len(keys) != 0 {
		t.Fatalf("a refused backup wrote %v", keys)
	}
	// The configuration file's retain-days: is the flag's (S3BAK_RETAIN_DAYS too).
	cfg := filepath.Join(t.TempDir(), "config.yaml")
	writeFile(t, cfg, []byte("retain-days: 7\nretention-mode: compliance\n"))
	r = runCtx(t, ctx, append(n.backupArgs(bucket), "--config", cfg)...)
	wantExit(t, r, 1, "has no S3 Object Lock")
	r = runCtx(t, ctx, append(n.backupArgs(bucket), "--retention-mode", "compliance")...)
	wantExit(t, r, exitUsage, "--retention-mode needs --retain-days")
	r = runCtx(t, ctx, append(n.backupArgs(bucket), "--retain-days", "3", "--retention-mode", "forever")...)
	wantExit(t, r, exitUsage, "want governance or compliance")
}

// TestIAMPoliciesOnAnObjectLockBucket runs docs/iam's roles on a bucket
// with Object Lock: the backup role backs up with --retain-days and
// extends what a second backup reuses; the purge role purges, keeping the
// retained backup (exit 0), and its own credentials cannot delete the
// retained manifest's version either — S3 refuses, not only s3bak; the
// restore role verifies the retention and restores the backup.
func TestIAMPoliciesOnAnObjectLockBucket(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), testDeadlineLock)
	defer cancel()
	n := buildNode(t)
	n.extra = []string{"--prefix", iamPrefix, "--retain-days", "1"}
	bucket := newLockBucket(t)
	roles := map[string][]string{}
	for _, role := range []string{"backup", "restore", "purge"} {
		roles[role] = assumeRole(t, rolePolicy(t, role, bucket))
	}
	node := []string{"--bucket", bucket, "--prefix", iamPrefix, "--cluster", "prod", "--node", "cass-1"}
	cmd := func(args ...string) []string { return append(args, node...) }
	ok := func(r result, what string) result {
		t.Helper()
		if r.code != 0 {
			t.Fatalf("%s: exit %d\nstdout: %s\nstderr: %s", what, r.code, r.stdout, r.stderr)
		}
		return r
	}

	r := ok(asRoleCtx(t, ctx, roles["backup"], cmd("preflight", "--retain-days", "1", "--output", "json")...), "preflight as the backup role")
	if c := preflightCheck(t, r.stdout, "object-lock"); c.Status != "PASS" {
		t.Errorf("object-lock as the backup role: %+v", c)
	}
	var first backupOutput
	r = ok(asRoleCtx(t, ctx, roles["backup"], append(n.backupArgs(bucket), "--output", "json")...), "backup as the backup role")
	if err := json.Unmarshal([]byte(r.stdout), &first); err != nil {
		t.Fatal(err)
	}
	snapshotAgain(t, n, "day2")
	n.tag = "day2"
	n.extra = []string{"--prefix", iamPrefix, "--retain-days", "2"}
	ok(asRoleCtx(t, ctx, roles["backup"], n.backupArgs(bucket)...), "second backup as the backup role")
	m1 := manifestOfNode(t, bucket, manifest.Node{Prefix: iamPrefix, Cluster: "prod", Name: "cass-1"}, first.BackupID)
	keys, err := referencedKeys(manifest.Node{Prefix: iamPrefix, Cluster: "prod", Name: "cass-1"}, restore.Files(m1.Files))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if _, until := retentionOf(t, bucket, k); until.Before(time.Now().Add(47 * time.Hour)) {
			t.Errorf("%s: retained until %s, want two days from now", k, until)
		}
	}

	r = ok(asRoleCtx(t, ctx, roles["purge"], cmd("purge", "--keep-last", "1", "--grace", "0s")...), "purge as the purge role")
	if !strings.Contains(r.stdout, "S3 Object Lock retention kept 1 backup") || !strings.Contains(r.stdout, "retained s3://"+bucket+"/") {
		t.Errorf("purge does not report the retained backup:\n%s", r.stdout)
	}
	// The purge role may delete versions, yet S3 refuses this one.
	mkey := iamPrefix + "/prod/cass-1/" + manifest.ManifestKey(first.BackupID)
	head, err := rawClient(minio).HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(mkey)})
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, kv := range roles["purge"] {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	purger := s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(minio.URL), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"], env["AWS_SESSION_TOKEN"])})
	if _, err := purger.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(mkey), VersionId: head.VersionId}); err == nil {
		t.Fatal("the purge role deleted a retained manifest's version")
	}

	r = ok(asRoleCtx(t, ctx, roles["restore"], cmd("verify", "--backup", first.BackupID, "--output", "json")...), "verify as the restore role")
	var v verifyOutput
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || v.Retention == nil || v.Retention.Error != "" || len(v.Retention.Short) != 0 {
		t.Errorf("verify's retention as the restore role: %v %+v", err, v.Retention)
	}
	target := filepath.Join(t.TempDir(), "restore")
	ok(asRoleCtx(t, ctx, roles["restore"], cmd("restore", "--target", target, "--backup", first.BackupID)...), "restore as the restore role")
	n.tag = "nightly"
	compareTree(t, target, n.want)
}

// TestPurgeOnAnObjectLockBucketDeletesVersions: backups without retention
// on an Object Lock bucket (versioned) are purged version by version: the
// removed backup's manifest and the object only it referenced leave no
// version and no delete marker behind, and the kept backup verifies.
func TestPurgeOnAnObjectLockBucketDeletesVersions(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), testDeadlineLock)
	defer cancel()
	n := buildNode(t)
	bucket := newLockBucket(t)
	snap := filepath.Join(n.dataDirs[1], "shop", "orders-0123456789abcdef0123456789abcdef", "snapshots", n.tag)
	unique := make([]byte, 1<<20)
	rand.Read(unique)
	writeFile(t, filepath.Join(snap, "nb-9-big-Data.db"), unique)
	var first backupOutput
	r := mustRunCtx(t, ctx, append(n.backupArgs(bucket), "--output", "json")...)
	if err := json.Unmarshal([]byte(r.stdout), &first); err != nil {
		t.Fatal(err)
	}
	dirs := snapshotAgain(t, n, "day2")
	for _, d := range dirs {
		os.Remove(filepath.Join(d, "nb-9-big-Data.db")) // in one of them: the first backup alone has it
	}
	mustRunCtx(t, ctx, n.backupArgs(bucket)...)
	root := "prod/cass-1/"
	// An orphan under a legal hold: S3 refuses its delete, the purge goes on.
	held := root + "data/ee/held.raw"
	if _, err := rawClient(minio).PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(held),
		Body: strings.NewReader("held"), ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c,
		ObjectLockLegalHoldStatus: types.ObjectLockLegalHoldStatusOn}); err != nil {
		t.Fatal(err)
	}
	before, _ := versionsOf(t, bucket, root+"data/")
	node := []string{"--bucket", bucket, "--cluster", "prod", "--node", "cass-1"}
	r = mustRunCtx(t, ctx, append([]string{"purge", "--keep-last", "1", "--grace", "0s", "--output", "json"}, node...)...)
	var reps []struct {
		Removed        []struct{ ID string } `json:"removed"`
		ObjectsDeleted int                   `json:"objects_deleted"`
		Retained       struct {
			Objects int `json:"objects"`
			First   []struct{ Key, Mode string }
		} `json:"retained"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &reps); err != nil || len(reps) != 1 || len(reps[0].Removed) != 1 || reps[0].ObjectsDeleted != 1 {
		t.Fatalf("purge: %v %s", err, r.stdout)
	}
	if ret := reps[0].Retained; ret.Objects != 1 || len(ret.First) != 1 || ret.First[0].Key != held || ret.First[0].Mode != "REFUSED" {
		t.Errorf("the held orphan is not reported: %+v", ret)
	}
	after, markers := versionsOf(t, bucket, root)
	for _, k := range markers {
		if strings.Contains(k, "/data/") || strings.Contains(k, "/backups/") {
			t.Errorf("purge left a delete marker on %s", k)
		}
	}
	if after[root+manifest.ManifestKey(first.BackupID)] != 0 {
		t.Errorf("the removed backup's manifest has versions left")
	}
	gone := 0
	for k := range before {
		if after[k] == 0 {
			gone++
		}
	}
	if gone != 1 {
		t.Errorf("%d data objects are gone, want the one only the first backup used", gone)
	}
	if after[held] != 1 {
		t.Errorf("the held orphan has %d versions", after[held])
	}
	mustRunCtx(t, ctx, append([]string{"verify", "--deep"}, node...)...)
}
