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
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/s3bak/s3bak/pkg/backup"
	"github.com/s3bak/s3bak/pkg/chunk"
	"github.com/s3bak/s3bak/pkg/lock"
	"github.com/s3bak/s3bak/pkg/manifest"
	"github.com/s3bak/s3bak/pkg/source"
	"github.com/s3bak/s3bak/pkg/testfixture"
	"github.com/s3bak/s3bak/pkg/transfer"
)

// Issue #12, "nothing silently lost": every file is backed up, under its
// own name, or the backup fails saying which and why; and every error says
// what to do.

// TestSymlinkedDirectoriesAndExactNamesRoundTrip: a keyspace moved to
// another disk and symlinked back, a symlinked table directory, a symlink
// loop in a snapshot, two names that differ only in bytes that are not
// UTF-8, and a name with a backslash are backed up, verified and restored
// byte-identical under their exact names.
func TestSymlinkedDirectoriesAndExactNamesRoundTrip(t *testing.T) {
	t.Parallel()
	td, err := testfixture.Testdata()
	if err != nil {
		t.Fatal(err)
	}
	tables, err := testfixture.LegacyTables(td, "nb")
	if err != nil || len(tables) < 2 {
		t.Fatalf("fixture tables: %v", err)
	}
	root := t.TempDir()
	n := &node{dataDirs: []string{filepath.Join(root, "data")}, tag: "nightly", want: map[string][]byte{}}
	disk2 := filepath.Join(root, "disk2")
	// The keyspace of tables[0] lives on disk2, linked from the data dir.
	moved := tables[0]
	moved.Keyspace = "moved_ks"
	snap, err := testfixture.WriteSnapshot(disk2, n.tag, moved, true)
	if err != nil {
		t.Fatal(err)
	}
	odd := map[string][]byte{"odd-\xff.db": []byte("first"), "odd-\xfe.db": []byte("second"), `back\slash.db`: []byte("third")}
	for name, b := range odd {
		writeFile(t, filepath.Join(snap, name), b)
	}
	n.expect(t, snap, moved.Keyspace+"/"+moved.Dir())
	symlink(t, filepath.Join(disk2, moved.Keyspace), filepath.Join(n.dataDirs[0], moved.Keyspace))
	// A table directory of a real keyspace, linked from disk2.
	linked := tables[1]
	linked.Keyspace = "real_ks"
	if snap, err = testfixture.WriteSnapshot(filepath.Join(disk2, "tables"), n.tag, linked, true); err != nil {
		t.Fatal(err)
	}
	n.expect(t, snap, linked.Keyspace+"/"+linked.Dir())
	symlink(t, filepath.Join(disk2, "tables", linked.Keyspace, linked.Dir()), filepath.Join(n.dataDirs[0], linked.Keyspace, linked.Dir()))
	// A loop: a directory in a snapshot that links back to the snapshot.
	symlink(t, "..", filepath.Join(snap, ".idx", "up"))
	writeFile(t, filepath.Join(snap, ".idx", "nb-1-big-Data.db"), []byte("index sstable"))
	n.want[linked.Keyspace+"/"+linked.Dir()+"/.idx/nb-1-big-Data.db"] = []byte("index sstable")

	bucket := newBucket(t)
	done := make(chan result, 1)
	go func() { done <- s3bak(t, n.backupArgs(bucket)...) }()
	var r result
	select {
	case r = <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("backup hangs (the symlink loop?)")
	}
	if r.code != 0 {
		t.Fatalf("backup: exit %d\n%s", r.code, r.stderr)
	}
	if st := statsOf(t, r); st.Files != len(n.want) {
		t.Fatalf("backed up %d files, want %d", st.Files, len(n.want))
	}
	nodeArgs := []string{"--bucket", bucket, "--cluster", "prod", "--node", "cass-1"}
	mustRun(t, append([]string{"verify", "--deep"}, nodeArgs...)...)
	target := filepath.Join(t.TempDir(), "restore")
	mustRun(t, append([]string{"restore", "--target", target}, nodeArgs...)...)
	compareTree(t, target, n.want)
	for name, b := range odd {
		got, err := os.ReadFile(filepath.Join(target, moved.Keyspace, moved.Dir(), name))
		if err != nil || !bytes.Equal(got, b) {
			t.Errorf("%q: restored %q, %v; want %q", name, got, err, b)
		}
	}
	// The manifest says which names need their exact bytes (their records'
	// "pb": base64 of the name).
	keys := listKeys(t, bucket, "prod/cass-1/backups/")
	if len(keys) != 1 {
		t.Fatalf("manifests: %v", keys)
	}
	rc, err := testClient(t, bucket).Get(context.Background(), keys[0], 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var stored bytes.Buffer
	stored.ReadFrom(rc)
	rc.Close()
	// Stored compressed (zstd): read the JSON inside.
	zr, err := zstd.NewReader(&stored)
	if err != nil {
		t.Fatal(err)
	}
	var raw bytes.Buffer
	if _, err := raw.ReadFrom(zr); err != nil {
		t.Fatalf("the stored manifest is not a zstd stream: %v", err)
	}
	zr.Close()
	if !regexp.MustCompile(`"schema":\s*[34]\b`).Match(raw.Bytes()) || bytes.Count(raw.Bytes(), []byte(`"pb":`)) != 2 {
		t.Errorf("the manifest does not carry the two exact names (pb):\n%.2000s", raw.String())
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// engine is a backup engine on bucket with small chunks, calling hook as
// its progress counter: the read of a large file reports progress while
// it reads, and a small file once it is stored.
func engine(t *testing.T, bucket string, hook func(int64)) *backup.Engine {
	t.Helper()
	c := testClient(t, bucket)
	enc, err := chunk.NewEncoder(chunk.Options{ChunkSize: 64 << 10, Level: 1, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { enc.Close() })
	up := c.NewUploader(transfer.UploaderOptions{PartSize: transfer.MinPartSize, Concurrency: 2})
	// No packing: a packed file's progress comes when its pack is stored,
	// after the run's last file; an object of its own reports progress once
	// stored, before the file is checked for changes — when hook changes it.
	return backup.New(c, enc, up, backup.Options{Node: manifest.Node{Cluster: "prod", Name: "changing"}, Progress: progressFunc(hook),
		PackSize: backup.NoPacking})
}

type progressFunc func(int64)

func (f progressFunc) Add(n int64) { f(n) }

func listed(t *testing.T, p string) source.File {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return source.File{Path: "ks/t-1/" + filepath.Base(p), Dir: filepath.Dir(p), Name: filepath.Base(p), Size: fi.Size(), Mode: fi.Mode().Perm(), ModTime: fi.ModTime()}
}

// TestFileThatChangesWhileReadFailsTheBackup: only the listed size is read,
// so a file that grows while it is read (a live sstable being written, not
// a snapshot) would be stored cut short without a word. It fails the
// backup instead, naming the file and what to do; no manifest is written.
func TestFileThatChangesWhileReadFailsTheBackup(t *testing.T) {
	t.Parallel()
	bucket := newBucket(t)
	for _, size := range []int{1000, 300 << 10} { // one chunk; several chunks, read while streamed
		dir := t.TempDir()
		p := filepath.Join(dir, "nb-1-big-Data.db")
		b := make([]byte, size)
		rand.Read(b)
		writeFile(t, p, b)
		f := listed(t, p)
		var once sync.Once
		grow := func(int64) {
			once.Do(func() {
				fh, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
				if err == nil {
					fh.Write([]byte("appended while the backup read the file"))
					fh.Close()
				}
			})
		}
		_, err := engine(t, bucket, grow).Run(context.Background(), &source.Set{Kind: "cassandra", Tag: "t", Files: []source.File{f}})
		if !errors.Is(err, chunk.ErrChanged) {
			t.Fatalf("%d bytes: a file that grew while read: %v, want chunk.ErrChanged", size, err)
		}
		for _, w := range []string{p, "changed while it was read", "snapshot"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%d bytes: the error does not say %q: %v", size, w, err)
			}
		}
	}
	if keys := listKeys(t, bucket, "prod/changing/backups/"); len(keys) != 0 {
		t.Fatalf("manifests after failed backups: %v", keys)
	}
}

// TestVanishedFileIsNotBlamedOnPermissions: a file deleted between listing
// and reading (a snapshot cleared during the backup) says so.
func TestVanishedFileIsNotBlamedOnPermissions(t *testing.T) {
	t.Parallel()
	bucket := newBucket(t)
	p := filepath.Join(t.TempDir(), "nb-1-big-Index.db")
	writeFile(t, p, []byte("soon gone"))
	f := listed(t, p)
	os.Remove(p)
	_, err := engine(t, bucket, func(int64) {}).Run(context.Background(), &source.Set{Kind: "cassandra", Tag: "t", Files: []source.File{f}})
	if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "deleted after the snapshot was listed") ||
		strings.Contains(err.Error(), "may read") {
		t.Fatalf("vanished file: %v", err)
	}
}

// closedPort is an address that refuses connections: a socket bound to it
// that does not listen, held until the test ends. A port that is merely
// closed again could be taken meanwhile by a server of a test running in
// parallel.
func closedPort(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return "127.0.0.1:" + strconv.Itoa(sa.(*syscall.SockaddrInet4).Port)
}

// TestUnreachableEndpointSaysSo: a dead endpoint at the start is
// configuration, not an outage: it is reported at once, as what it is.
func TestUnreachableEndpointSaysSo(t *testing.T) {
	t.Parallel()
	n := smallNode(t)
	url := "http://" + closedPort(t)
	for _, args := range [][]string{
		append(n.backupArgs("some-bucket"), "--endpoint-url", url),
		{"list", "--bucket", "some-bucket", "--node", "cass-1", "--endpoint-url", url},
		{"restore", "--bucket", "some-bucket", "--node", "cass-1", "--target", t.TempDir(), "--endpoint-url", url},
	} {
		start := time.Now()
		r := s3bak(t, args...)
		wantExit(t, r, exitFailed, "cannot connect to "+url+": connection refused", "--endpoint-url")
		if took := time.Since(start); took > 20*time.Second {
			t.Errorf("%s: %s to report a refused connection", args[0], took)
		}
		for _, bad := range []string{"StatusCode: 0", "does it exist"} {
			if strings.Contains(r.stderr, bad) {
				t.Errorf("%s: the message says %q:\n%s", args[0], bad, r.stderr)
			}
		}
	}
}

// runEnv runs the s3bak binary with env added to this process's (the test
// MinIO's) environment.
func runEnv(t *testing.T, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(s3bakBin, append(args, "--log-format", "json")...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{code, out.String(), errb.String()}
}

// TestCredentialErrorsSayWhatToCheck: a wrong secret key, an access key
// the server does not know and no credentials at all are three messages.
func TestCredentialErrorsSayWhatToCheck(t *testing.T) {
	t.Parallel()
	n := smallNode(t)
	bucket := newBucket(t)
	list := []string{"list", "--bucket", bucket, "--cluster", "prod", "--node", "cass-1"}
	for _, cmd := range [][]string{n.backupArgs(bucket), list} {
		r := runEnv(t, []string{"AWS_SECRET_ACCESS_KEY=not-the-secret"}, cmd...)
		wantExit(t, r, exitFailed, "SignatureDoesNotMatch", "signature does not match", "secret", "AWS_SECRET_ACCESS_KEY")
		r = runEnv(t, []string{"AWS_ACCESS_KEY_ID=nobody-knows-me"}, cmd...)
		wantExit(t, r, exitFailed, "InvalidAccessKeyId", "does not know this access key id", "AWS_ACCESS_KEY_ID")
		r = runEnv(t, []string{"AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY="}, cmd...)
		wantExit(t, r, exitFailed, "no AWS credentials found", "environment", "credentials file", "instance role", "IMDS")
		if strings.Contains(r.stderr, "get identity") || strings.Contains(r.stderr, "failed to refresh cached credentials") {
			t.Errorf("the SDK's own text leaks into the message:\n%s", r.stderr)
		}
	}
	if keys := listKeys(t, bucket, ""); len(keys) != 0 {
		t.Fatalf("refused credentials wrote %v", keys)
	}
}

// TestInterruptedSaysInterrupted: SIGINT ends a backup with exit 130 and
// "interrupted", not with whatever the cancelled request said.
func TestInterruptedSaysInterrupted(t *testing.T) {
	t.Parallel()
	_, _, cmd, out := startSlowBackup(t, 20)
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != exitInterrupted {
		t.Fatalf("exit %v, want %d\n%s", err, exitInterrupted, out)
	}
	// --log-format json: the last word is a JSON record.
	var last struct{ Level, Msg, Class, Note, Error string }
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.Contains(line, `"exit_code"`) {
			if err := json.Unmarshal([]byte(line), &last); err != nil {
				t.Fatalf("%v: %s", err, line)
			}
		}
	}
	if last.Level != "ERROR" || last.Msg != "s3bak interrupted" || last.Class != "interrupted" || last.Error != "" ||
		!strings.Contains(last.Note, "resumes") {
		t.Fatalf("the last word is %+v\n%s", last, out)
	}
}

// TestRestoreFreeSpaceInUnits: the refusal to restore onto a disk too
// small speaks in GiB (here: a manifest of one 1 PiB file).
func TestRestoreFreeSpaceInUnits(t *testing.T) {
	t.Parallel()
	bucket := newBucket(t)
	sha := strings.Repeat("cd", 32)
	m := manifest.Manifest{Schema: 1, ID: "20260101T000000Z", Kind: "cassandra", Cluster: "prod", Node: "big",
		Files: []manifest.File{{Path: "ks/t-1/nb-1-big-Data.db", Size: 1 << 50, StoredSize: 1 << 50, SHA256: sha,
			Key: manifest.ObjectKey(sha, false, 0), Compression: chunk.None}}}
	b, _ := m.Encode()
	nd := manifest.Node{Cluster: "prod", Name: "big"}
	if err := testClient(t, bucket).PutBytes(context.Background(), nd.Root()+manifest.ManifestKey(m.ID), b, ""); err != nil {
		t.Fatal(err)
	}
	r := s3bak(t, "restore", "--bucket", bucket, "--cluster", "prod", "--node", "big", "--target", t.TempDir())
	wantExit(t, r, exitFailed, "the restore needs 1.0 PiB")
	if !regexp.MustCompile(`has [0-9.]+ [KMGTP]iB free`).MatchString(r.stderr) || strings.Contains(r.stderr, "bytes free") {
		t.Fatalf("free space not in units:\n%s", r.stderr)
	}
}

// TestLockOfDeadLocalProcessSaysSo: a lock whose holder was a process of
// this host that is gone is taken over, and the log says that, not
// "lease_expired".
func TestLockOfDeadLocalProcessSaysSo(t *testing.T) {
	t.Parallel()
	n := smallNode(t)
	bucket := newBucket(t)
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	now := time.Now().UTC()
	info := lock.Info{Op: "backup", Host: host, PID: dead.Process.Pid, Token: "dead-run", Started: now.Add(-time.Minute), Expires: now.Add(time.Hour)}
	b, _ := json.Marshal(info)
	nd := manifest.Node{Cluster: "prod", Name: "cass-1"}
	if err := testClient(t, bucket).PutBytes(context.Background(), nd.Root()+lock.Key, b, "application/json"); err != nil {
		t.Fatal(err)
	}
	r := mustRun(t, n.backupArgs(bucket)...)
	want := "the holder, pid " + strconv.Itoa(dead.Process.Pid) + " on this host, is gone"
	if !strings.Contains(r.stderr, want) || strings.Contains(r.stderr, "lease_expired") {
		t.Fatalf("the takeover is not explained (want %q):\n%s", want, r.stderr)
	}
}

// TestUnrestorableNamesAreRefusedBeforeUpload: two data directories that
// would restore a file and a directory under the same path cannot both be
// restored; discovery says so, naming both, before anything is uploaded
// (the manifest's own check would refuse it only after every upload).
func TestUnrestorableNamesAreRefusedBeforeUpload(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	n := &node{dataDirs: []string{filepath.Join(root, "d1"), filepath.Join(root, "d2")}, tag: "nightly"}
	table := filepath.Join("shop", "orders-0123456789abcdef0123456789abcdef", "snapshots", n.tag)
	file, inDir := filepath.Join(n.dataDirs[0], table, "extra"), filepath.Join(n.dataDirs[1], table, "extra", "inner")
	writeFile(t, file, []byte("a file"))
	writeFile(t, inDir, []byte("a file in a directory of the same name"))
	bucket := newBucket(t)
	wantExit(t, s3bak(t, n.backupArgs(bucket)...), exitFailed, file, inDir, "both a file and the directory")
	// Only the run's record, which says it failed.
	keys := listKeys(t, bucket, "")
	if len(keys) != 1 || !manifest.IsRunKey(keys[0]) {
		t.Fatalf("a refused backup wrote %v", keys)
	}
}
