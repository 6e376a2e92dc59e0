package transfer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// TestConditionalReplace is what the lock relies on: a write naming an old
// ETag fails once another write replaced the object.
func TestConditionalReplace(t *testing.T) {
	ctx := context.Background()
	c := client(t, "")
	key := t.Name() + "/lock"
	tag1, err := c.Put(ctx, key, []byte("one"), "", Cond{IfAbsent: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(ctx, key, []byte("two"), "", Cond{IfAbsent: true}); !errors.Is(err, ErrExists) {
		t.Fatalf("second create: %v, want ErrExists", err)
	}
	tag2, err := c.Put(ctx, key, []byte("two"), "", Cond{IfMatch: tag1})
	if err != nil {
		t.Fatalf("replace with the current ETag: %v", err)
	}
	if _, err := c.Put(ctx, key, []byte("three"), "", Cond{IfMatch: tag1}); !errors.Is(err, ErrExists) {
		t.Fatalf("replace with a stale ETag: %v, want ErrExists", err)
	}
	b, etag, err := c.GetSmall(ctx, key, 10)
	if err != nil || string(b) != "two" || etag != tag2 {
		t.Fatalf("GetSmall = %q %q %v, want two %q", b, etag, err, tag2)
	}
}

func TestDeleteManyInBatches(t *testing.T) {
	ctx := context.Background()
	c := client(t, "when_required")
	prefix := t.Name() + "/"
	var keys []string
	for i := range DeleteBatch + 250 {
		keys = append(keys, fmt.Sprintf("%sk%05d", prefix, i))
	}
	// Writing 1250 objects one by one is slow; only a few need to exist:
	// deleting absent keys is not an error.
	for _, k := range keys[:3] {
		if err := c.PutBytes(ctx, k, []byte("x"), ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.PutBytes(ctx, keys[len(keys)-1], []byte("x"), ""); err != nil {
		t.Fatal(err)
	}
	if err := c.PutBytes(ctx, prefix+"keep", []byte("x"), ""); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteMany(ctx, keys, 3); err != nil {
		t.Fatal(err)
	}
	var left []string
	for o, err := range c.List(ctx, prefix) {
		if err != nil {
			t.Fatal(err)
		}
		left = append(left, o.Key)
	}
	if len(left) != 1 || left[0] != prefix+"keep" {
		t.Fatalf("left %v, want only keep", left)
	}
}

func TestListAndAbortUploads(t *testing.T) {
	ctx := context.Background()
	c := client(t, "")
	key := t.Name() + "/data/big"
	out, err := c.s3.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &c.Bucket, Key: &key})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.s3.UploadPart(ctx, &s3.UploadPartInput{Bucket: &c.Bucket, Key: &key, UploadId: out.UploadId,
		PartNumber: new(int32(1)), Body: bytes.NewReader(make([]byte, 1024))})
	if err != nil {
		t.Fatal(err)
	}
	var found []Upload
	for u, err := range c.ListUploads(ctx, t.Name()+"/") {
		if err != nil {
			t.Fatal(err)
		}
		found = append(found, u)
	}
	if len(found) != 1 || found[0].Key != key || found[0].Initiated.IsZero() {
		t.Fatalf("uploads %+v, want the one started", found)
	}
	if err := c.Abort(ctx, found[0]); err != nil {
		t.Fatal(err)
	}
	for u, err := range c.ListUploads(ctx, t.Name()+"/") {
		t.Fatalf("after abort: %+v %v", u, err)
	}
}
