package backup

import (
	"context"
	"testing"
	"time"

	"github.com/s3bak/s3bak/pkg/manifest"
)

// TestLostObjectIsStoredAgain: after an object is deleted behind s3bak's
// back, the next backup of the same files trusted the index, exited 0 and
// referenced the deleted object — every later backup too. Now the backup
// notices, uploads the files again, and references only objects that are
// there. Both a file's own object and a pack are lost here.
func TestLostObjectIsStoredAgain(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	set := writeSet(t, 1, 3<<20, 30)
	e, _, _ := engine(t, "lost-object", nil, 2, 8)
	first, err := e.RunLocked(ctx, set, SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	root := e.opts.Node.Root()
	var own, pack string
	for _, f := range stored(t, e, first).Files {
		if manifest.IsPackKey(f.Key) {
			pack = f.Key
		} else {
			own = f.Key
		}
	}
	if own == "" || pack == "" {
		t.Fatalf("want a file in its own object and one in a pack: %q, %q", own, pack)
	}
	for _, k := range []string{own, pack} {
		if err := client.Delete(ctx, root+k); err != nil {
			t.Fatal(err)
		}
	}

	e2, _, _ := engine(t, "lost-object", nil, 2, 8)
	second, err := e2.RunLocked(ctx, set, SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if second.Uploaded == 0 {
		t.Fatal("nothing was uploaded again")
	}
	for _, f := range stored(t, e2, second).Files {
		info, err := client.Head(ctx, root+f.Key)
		if err != nil {
			t.Fatalf("the second backup references %s (%s): %v", f.Key, f.Path, err)
		}
		if min := f.Offset + f.StoredSize; info.Size < min {
			t.Fatalf("%s has %d bytes, %s needs %d", f.Key, info.Size, f.Path, min)
		}
	}
}
