package restore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/s3bak/s3bak/pkg/chunk"
	"github.com/s3bak/s3bak/pkg/faultproxy"
	"github.com/s3bak/s3bak/pkg/manifest"
	"github.com/s3bak/s3bak/pkg/transfer"
)

// proxied returns a client of the test bucket that reaches MinIO through a
// fault proxy, closed at the end of the test.
func proxied(t *testing.T, o transfer.Options) (*faultproxy.Proxy, *transfer.Client) {
	t.Helper()
	p, err := faultproxy.New(os.Getenv("AWS_ENDPOINT_URL_S3"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	o.Bucket, o.EndpointURL = "restore", p.URL
	c, err := transfer.New(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return p, c
}

// bounded is a context that ends before the test's deadline, or after
// limit: a hang fails the test instead of hanging it.
func bounded(t *testing.T, limit time.Duration) context.Context {
	t.Helper()
	end := time.Now().Add(limit)
	if d, ok := t.Deadline(); ok && d.Add(-5*time.Second).Before(end) {
		end = d.Add(-5 * time.Second)
	}
	ctx, cancel := context.WithDeadline(context.Background(), end)
	t.Cleanup(cancel)
	return ctx
}

// getsOf matches the GETs of one object.
func getsOf(node manifest.Node, f manifest.File) func(*http.Request) bool {
	return faultproxy.Request(http.MethodGet, "/"+node.Root()+f.Key)
}

// TestFlippedBitOnTheWayIsReadAgain: a bit flipped in a GET's answer is
// not damage in the bucket. The restore reads the bytes again with a
// fresh GET and succeeds byte for byte, for every way a file is fetched:
// one whole-object GET (the SDK's check of the object's stored checksum
// fails), ranged GETs of chunk groups (the file's SHA-256 fails and the
// file is read again, each chunk's CRC32C checked), an uncompressed object
// in one GET and in ranges (no CRC per range: the file's SHA-256 fails and
// it is read again) and a run of a pack.
func TestFlippedBitOnTheWayIsReadAgain(t *testing.T) {
	defer func(old int64) { rangeSize = old }(rangeSize)
	for _, tc := range []struct {
		name  string
		size  int
		mode  chunk.Mode
		gets  int   // GETs of the object without the fault
		rsize int64 // rangeSize
	}{
		{"whole", 200000, chunk.Auto, 1, 16 << 20},
		{"ranged", 3<<20 + 555, chunk.Auto, 0, 16 << 20}, // one per group
		{"uncompressed", 300000, chunk.None, 1, 16 << 20},
		{"uncompressed-ranged", 5<<20 + 777, chunk.None, 0, 1 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rangeSize = tc.rsize
			ctx := bounded(t, 60*time.Second)
			node := manifest.Node{Cluster: "c", Name: "flip-" + tc.name}
			raw := mixedData(tc.size, 40)
			f, _ := store(t, node, "ks/t-1/nb-7-big-Data.db", raw, tc.mode, 64<<10)
			gets := tc.gets
			if gets == 0 {
				gets = len(plan(f, layout(f), maxGroupMemory))
				if gets < 2 {
					t.Fatalf("%d groups, want several", gets)
				}
			}
			p, c := proxied(t, transfer.Options{})
			rule := p.Add(faultproxy.Rule{Match: getsOf(node, f), Times: 1, Fault: faultproxy.FlipBit})
			target := t.TempDir()
			if _, err := Run(ctx, c, node, backupOf(node, f), Options{Target: target}); err != nil {
				t.Fatalf("restore with one bit flipped on the way: %v", err)
			}
			checkTree(t, target, map[string][]byte{f.Path: raw})
			// The whole file was read again (for a file of one GET, that
			// is the damaged GET made again).
			want := 2 * gets
			if rule.Applied() != 1 || rule.Seen() != want {
				t.Fatalf("proxy saw %d GETs of the object (%d flipped), want %d", rule.Seen(), rule.Applied(), want)
			}
		})
	}
	t.Run("pack", func(t *testing.T) {
		ctx := bounded(t, 60*time.Second)
		node := manifest.Node{Cluster: "c", Name: "flip-pack"}
		raws := map[string][]byte{
			"ks/t-1/nb-1-big-TOC.txt":       []byte("Data.db\nTOC.txt\n"),
			"ks/t-1/nb-1-big-Statistics.db": mixedData(200<<10+7, 41),
			"ks/t-1/nb-1-big-Summary.db":    mixedData(3000, 42),
			"ks/t-1/nb-1-big-Filter.db":     mixedData(70<<10, 43),
		}
		files, _ := packFiles(t, node, raws)
		p, c := proxied(t, transfer.Options{})
		rule := p.Add(faultproxy.Rule{Match: getsOf(node, files[0]), Times: 1, Fault: faultproxy.FlipBit})
		target := t.TempDir()
		if _, err := Run(ctx, c, node, backupOf(node, files...), Options{Target: target}); err != nil {
			t.Fatalf("restore with one bit flipped on the way: %v", err)
		}
		checkTree(t, target, raws)
		if rule.Applied() != 1 || rule.Seen() != 2 {
			t.Fatalf("proxy saw %d GETs of the pack (%d flipped), want 2", rule.Seen(), rule.Applied())
		}
	})
}

// TestFlippedBitOnEveryReadIsCorrupt: bytes that fail their check on the
// fresh read too are damage: ErrVerify, naming the object, after exactly
// two GETs, and nothing is left in the target.
func TestFlippedBitOnEveryReadIsCorrupt(t *testing.T) {
	ctx := bounded(t, 60*time.Second)
	node := testNode(t)
	raw := mixedData(200000, 44)
	f, _ := store(t, node, "ks/t-1/nb-8-big-Data.db", raw, chunk.Auto, 64<<10)
	p, c := proxied(t, transfer.Options{})
	rule := p.Add(faultproxy.Rule{Match: getsOf(node, f), Fault: faultproxy.FlipBit})
	target := t.TempDir()
	_, err := Run(ctx, c, node, backupOf(node, f), Options{Target: target})
	if !errors.Is(err, ErrVerify) || !strings.Contains(err.Error(), node.Root()+f.Key) {
		t.Fatalf("restore: %v, want ErrVerify naming %s", err, node.Root()+f.Key)
	}
	t.Logf("restore failed as it should: %v", err)
	if rule.Seen() != 2 {
		t.Fatalf("proxy saw %d GETs of the object, want 2 (the first and one fresh read)", rule.Seen())
	}
	checkTree(t, target, nil)
}

// TestDamagedChunkIsNamed: a file of several GETs whose bytes fail their
// SHA-256 is read again with each chunk's CRC32C checked, so that damage
// that stays is reported as the chunk that holds it, read once more alone
// before it is called corrupt; the other chunks are read twice in all.
func TestDamagedChunkIsNamed(t *testing.T) {
	ctx := bounded(t, 60*time.Second)
	node := testNode(t)
	raw := mixedData(3<<20+555, 48)
	f, _ := store(t, node, "ks/t-1/nb-11-big-Data.db", raw, chunk.Auto, 64<<10)
	chunks := layout(f)
	groups := plan(f, chunks, maxGroupMemory)
	if len(groups) < 2 {
		t.Fatalf("%d groups, want several", len(groups))
	}
	bad := groups[1]
	rangeOf := fmt.Sprintf("bytes=%d-%d", bad.storedOff, bad.storedOff+bad.storedLen-1)
	p, c := proxied(t, transfer.Options{})
	damaged := p.Add(faultproxy.Rule{Match: func(r *http.Request) bool {
		return getsOf(node, f)(r) && r.Header.Get("Range") == rangeOf
	}, Fault: faultproxy.FlipBit})
	all := p.Add(faultproxy.Rule{Match: getsOf(node, f), Fault: faultproxy.Delay(0)}) // counts them
	_, err := Run(ctx, c, node, backupOf(node, f), Options{Target: t.TempDir()})
	if !errors.Is(err, ErrVerify) || !strings.Contains(err.Error(), "the same on a fresh read") {
		t.Fatalf("restore: %v, want ErrVerify, the same on a fresh read", err)
	}
	// The bit flipped is anywhere in the group's GET: a chunk of the group.
	var named, of int
	if m := regexp.MustCompile(`chunk (\d+) of (\d+) `).FindStringSubmatch(err.Error()); m != nil {
		named, _ = strconv.Atoi(m[1])
		of, _ = strconv.Atoi(m[2])
	}
	if of != len(chunks) || named < bad.first || named >= bad.end {
		t.Fatalf("restore: %v, want chunk %d to %d of %d named", err, bad.first, bad.end-1, len(chunks))
	}
	t.Logf("restore failed as it should: %v", err)
	if damaged.Seen() != 3 {
		t.Errorf("the damaged group was fetched %d times, want 3 (the file's read, its checked read, the chunk's fresh read)", damaged.Seen())
	}
	if n := all.Seen(); n > 2*len(groups)+1 {
		t.Errorf("%d GETs of the object, want at most %d (the file twice, the damaged group once more)", n, 2*len(groups)+1)
	}
}

// TestReadChunkAndDeepVerifyReadAgain: ReadChunk and verify --deep read a
// chunk that failed its CRC32C again before calling it corrupt.
func TestReadChunkAndDeepVerifyReadAgain(t *testing.T) {
	ctx := bounded(t, 60*time.Second)
	node := testNode(t)
	const cs = 64 << 10
	raw := mixedData(1<<20+321, 45)
	f, _ := store(t, node, "ks/t-1/nb-9-big-Data.db", raw, chunk.Auto, cs)
	p, c := proxied(t, transfer.Options{})

	once := p.Add(faultproxy.Rule{Match: getsOf(node, f), Times: 1, Fault: faultproxy.FlipBit})
	got, err := ReadChunk(ctx, c, node, f, 2, nil)
	if err != nil || !bytes.Equal(got, raw[2*cs:3*cs]) {
		t.Fatalf("ReadChunk with a bit flipped on the way: %v", err)
	}
	if once.Seen() != 2 {
		t.Fatalf("ReadChunk made %d GETs, want 2", once.Seen())
	}

	p.ClearRules()
	always := p.Add(faultproxy.Rule{Match: getsOf(node, f), Fault: faultproxy.FlipBit})
	if _, err := ReadChunk(ctx, c, node, f, 2, nil); !errors.Is(err, ErrVerify) || !strings.Contains(err.Error(), "chunk 2 ") {
		t.Fatalf("ReadChunk of a chunk damaged on every read: %v, want ErrVerify naming chunk 2", err)
	}
	if always.Seen() != 2 {
		t.Fatalf("ReadChunk made %d GETs, want 2", always.Seen())
	}

	p.ClearRules()
	once = p.Add(faultproxy.Rule{Match: getsOf(node, f), Times: 1, Fault: faultproxy.FlipBit})
	m := backupOf(node, f)
	res, err := Verify(ctx, c, node, m, VerifyOptions{Deep: true})
	if err != nil || len(res.Problems) != 0 {
		t.Fatalf("deep verify with a bit flipped on the way: %v, problems %v", err, res.Problems)
	}
	groups := len(plan(f, layout(f), maxGroupMemory))
	if once.Seen() != groups+1 {
		t.Fatalf("deep verify made %d GETs, want %d (one per group, one again)", once.Seen(), groups+1)
	}

	p.ClearRules()
	p.Add(faultproxy.Rule{Match: getsOf(node, f), Fault: faultproxy.FlipBit})
	res, err = Verify(ctx, c, node, m, VerifyOptions{Deep: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Problems) != 1 || !errors.Is(res.Problems[0].Err, ErrVerify) || res.Problems[0].Key != node.Root()+f.Key {
		t.Fatalf("deep verify of an object damaged on every read: problems %v, want one ErrVerify for %s", res.Problems, node.Root()+f.Key)
	}
}

// TestServerErrorsAreNotVerificationFailures: a server that keeps answering
// 500 says nothing about the backup. Verify (shallow and deep) and restore
// fail with a plain error (exit 1), not ErrVerify (exit 5), while an object
// that is really missing still is a verification problem.
func TestServerErrorsAreNotVerificationFailures(t *testing.T) {
	ctx := bounded(t, 90*time.Second)
	node := testNode(t)
	small, _ := store(t, node, "ks/t-1/nb-10-big-Index.db", mixedData(5000, 46), chunk.Auto, 64<<10)
	big, _ := store(t, node, "ks/t-1/nb-10-big-Data.db", mixedData(3<<20, 47), chunk.Auto, 64<<10)
	m := backupOf(node, small, big)
	p, c := proxied(t, transfer.Options{MaxAttempts: 2})
	heads := p.Add(faultproxy.Rule{Match: faultproxy.Request(http.MethodHead, ""), Fault: faultproxy.Status(500)})

	for _, deep := range []bool{false, true} {
		res, err := Verify(ctx, c, node, m, VerifyOptions{Deep: deep, Concurrency: 2})
		if err == nil || errors.Is(err, ErrVerify) || ctx.Err() != nil {
			t.Fatalf("verify (deep %v) with every HEAD answered 500: %v, want an error that is not ErrVerify", deep, err)
		}
		if !strings.Contains(err.Error(), "500") || !strings.Contains(err.Error(), node.Root()) {
			t.Errorf("verify error %q does not name the status and the object", err)
		}
		if res == nil || len(res.Problems) != 0 {
			t.Fatalf("verify (deep %v): problems %v, want none", deep, res)
		}
		t.Logf("verify (deep %v) failed as it should: %v", deep, err)
	}
	if heads.Seen() < 2 {
		t.Fatalf("proxy saw %d HEADs", heads.Seen())
	}

	// A restore: the large file's HEAD, the small file's GET.
	for _, tc := range []struct {
		name  string
		file  manifest.File
		match func(*http.Request) bool
	}{
		{"HEAD", big, faultproxy.Request(http.MethodHead, "")},
		{"GET", small, faultproxy.Request(http.MethodGet, "")},
	} {
		p.ClearRules()
		p.Add(faultproxy.Rule{Match: tc.match, Fault: faultproxy.Status(500)})
		_, err := Run(ctx, c, node, backupOf(node, tc.file), Options{Target: t.TempDir()})
		if err == nil || errors.Is(err, ErrVerify) || ctx.Err() != nil {
			t.Fatalf("restore with every %s answered 500: %v, want an error that is not ErrVerify", tc.name, err)
		}
		t.Logf("restore failed as it should: %v", err)
	}

	// Without the faults, a missing object is a verification problem.
	p.ClearRules()
	gone := small
	gone.Key = manifest.ObjectKey(strings.Repeat("0", 64), true, 64<<10)
	gone.Path = "ks/t-1/nb-11-big-Index.db"
	res, err := Verify(ctx, c, node, backupOf(node, small, gone), VerifyOptions{})
	if err != nil || len(res.Problems) != 1 || !errors.Is(res.Problems[0].Err, ErrVerify) || res.Problems[0].Path != gone.Path {
		t.Fatalf("verify with a missing object: %v, problems %v; want one ErrVerify for %s", err, res.Problems, gone.Path)
	}
}
