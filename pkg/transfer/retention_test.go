package transfer

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/s3bak/s3bak/pkg/miniotest"
)

// lockBucket creates a bucket with Object Lock on the package's MinIO.
func lockBucket(t *testing.T, name string) {
	t.Helper()
	cli := s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(miniotest.AccessKey, miniotest.SecretKey, "")})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := cli.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &name, ObjectLockEnabledForBucket: aws.Bool(true)}); err != nil {
		t.Fatal(err)
	}
}

func retainingClient(t *testing.T, bucket, mode, checksum string, days int) *Client {
	t.Helper()
	c, err := New(context.Background(), Options{Bucket: bucket, ChecksumCalculation: checksum,
		Retention: Retention{Mode: mode, For: time.Duration(days) * 24 * time.Hour, Retains: func(k string) bool { return k == "manifest" }}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestRetentionIsExtendedNeverShortened: uploads, multipart uploads and
// the keys Retains names are retained (with when_required checksums too,
// since S3 wants a checksum with a retention), other small objects are
// not; ExtendRetention leaves a longer retention and a compliance mode
// alone, extends a shorter one in its own mode, and gives an object
// without retention the mode asked; a retained version's delete is
// refused, an unretained one's leaves no delete marker.
func TestRetentionIsExtendedNeverShortened(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	lockBucket(t, "retention")
	for _, checksum := range []string{"when_supported", "when_required"} {
		c := retainingClient(t, "retention", "governance", checksum, 1)
		if err := c.NewUploader(UploaderOptions{}).Upload(ctx, checksum+"/data", Bytes([]byte("data"))); err != nil {
			t.Fatalf("%s: upload with retention: %v", checksum, err)
		}
		if err := uploadStream(ctx, c, checksum+"/large", bytes.NewReader(make([]byte, MinPartSize+1)), MinPartSize, 2); err != nil {
			t.Fatalf("%s: multipart upload with retention: %v", checksum, err)
		}
		for _, k := range []string{checksum + "/data", checksum + "/large"} {
			r, err := c.GetRetention(ctx, k, "")
			if err != nil || r.Mode != RetentionGovernance || r.Until.Before(time.Now().Add(23*time.Hour)) {
				t.Errorf("%s: retention %+v, %v; want governance for a day", k, r, err)
			}
		}
	}
	c := retainingClient(t, "retention", "compliance", "", 2)
	for key, want := range map[string]string{"manifest": RetentionCompliance, "lock.json": ""} {
		if err := c.PutBytes(ctx, key, []byte("x"), ""); err != nil {
			t.Fatal(err)
		}
		if r, err := c.GetRetention(ctx, key, ""); err != nil || r.Mode != want {
			t.Errorf("%s: retention %+v, %v; want mode %q", key, r, err, want)
		}
	}

	// The compliance manifest, retained 2 days: a shorter ask and a
	// governance ask change nothing; a longer one extends it, in compliance.
	m, _ := c.GetRetention(ctx, "manifest", "")
	if changed, err := c.ExtendRetention(ctx, "manifest", time.Now().Add(time.Hour), RetentionGovernance); changed || err != nil {
		t.Errorf("a shorter retention: changed %t, %v", changed, err)
	}
	later := time.Now().Add(3 * 24 * time.Hour)
	if changed, err := c.ExtendRetention(ctx, "manifest", later, RetentionGovernance); !changed || err != nil {
		t.Errorf("a longer retention: changed %t, %v", changed, err)
	}
	if r, _ := c.GetRetention(ctx, "manifest", ""); r.Mode != RetentionCompliance || r.Until.Before(later) || !r.Until.After(m.Until) {
		t.Errorf("extended: %+v, want compliance until %s", r, later)
	}
	// An object without retention gets the mode asked.
	if changed, err := c.ExtendRetention(ctx, "lock.json", later, RetentionGovernance); !changed || err != nil {
		t.Errorf("no retention yet: changed %t, %v", changed, err)
	}
	if r, _ := c.GetRetention(ctx, "lock.json", ""); r.Mode != RetentionGovernance {
		t.Errorf("lock.json: %+v", r)
	}

	// Deleting versions: the retained one is refused; an unretained one
	// goes without a delete marker.
	plain, err := New(ctx, Options{Bucket: "retention"})
	if err != nil {
		t.Fatal(err)
	}
	if err := plain.PutBytes(ctx, "free", []byte("free"), ""); err != nil {
		t.Fatal(err)
	}
	var free, held []Version
	for v, err := range plain.ListVersions(ctx, "") {
		if err != nil {
			t.Fatal(err)
		}
		switch v.Key {
		case "free":
			free = append(free, v)
		case "manifest":
			held = append(held, v)
		}
	}
	var refused *RefusedError
	if err := plain.DeleteVersions(ctx, held, 1); !errors.As(err, &refused) || len(refused.Refused) != len(held) {
		t.Errorf("deleting a retained version: %v, want it refused", err)
	}
	if err := plain.DeleteVersions(ctx, free, 1); err != nil {
		t.Fatal(err)
	}
	for v, err := range plain.ListVersions(ctx, "free") {
		if err != nil {
			t.Fatal(err)
		}
		t.Errorf("left after deleting its versions: %+v", v)
	}
	if _, err := plain.Head(ctx, "manifest"); err != nil {
		t.Errorf("the retained manifest: %v", err)
	}
	if l, err := plain.ObjectLockConfig(ctx); err != nil || !l.Enabled {
		t.Errorf("Object Lock configuration: %+v, %v", l, err)
	}
	if l, err := client(t, "").ObjectLockConfig(ctx); err != nil || l.Enabled {
		t.Errorf("a bucket without Object Lock: %+v, %v", l, err)
	}
	if err := client(t, "").RequireObjectLock(ctx); !errors.Is(err, ErrNoObjectLock) {
		t.Errorf("RequireObjectLock on a bucket without: %v", err)
	}
}

func TestRetentionOptions(t *testing.T) {
	for _, tc := range []struct {
		r   Retention
		msg string
	}{
		{Retention{Mode: "compliance"}, "needs --retain-days"},
		{Retention{Mode: "forever", For: time.Hour}, "want governance or compliance"},
	} {
		if _, err := newRetention(tc.r); err == nil || !bytes.Contains([]byte(err.Error()), []byte(tc.msg)) {
			t.Errorf("%+v: %v, want %q", tc.r, err, tc.msg)
		}
	}
	if got := CeilSecond(time.Unix(10, 1)); !got.Equal(time.Unix(11, 0)) {
		t.Errorf("CeilSecond: %s", got)
	}
	if got := CeilSecond(time.Unix(10, 0)); !got.Equal(time.Unix(10, 0)) {
		t.Errorf("CeilSecond of a whole second: %s", got)
	}
}
