package transfer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// CheckBucket answers whether the bucket exists and is reachable, with an
// error an operator can act on. It is a run's first request, so it tells
// configuration from trouble: credentials that cannot be found, an
// endpoint that cannot be connected to (at once: it is not retried for
// minutes as an outage would be), and credentials the server refuses.
func (c *Client) CheckBucket(ctx context.Context) error {
	if c.aws.Credentials != nil {
		if _, err := c.aws.Credentials.Retrieve(ctx); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return c.noCredentials(err)
		}
	}
	_, err := c.s3.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &c.Bucket}, failFast)
	if err == nil {
		return nil
	}
	if ce := connectError(err); ce != nil {
		return ce
	}
	var resp *awshttp.ResponseError
	if errors.As(err, &resp) && resp.HTTPStatusCode() == http.StatusForbidden {
		// A HEAD answer has no body, so no error code: a listing of one
		// key (the same permission, s3:ListBucket) says which 403 it is —
		// an unknown key, a wrong secret or a policy.
		_, lerr := c.s3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &c.Bucket, MaxKeys: aws.Int32(1)}, failFast)
		if lerr != nil {
			if cerr := c.classify("ListObjectsV2", "", lerr); errors.Is(cerr, ErrCredentials) {
				return cerr
			}
		}
	}
	return fmt.Errorf("bucket %q is not usable (does it exist, in this region, and may these credentials read it?): %w",
		c.Bucket, c.classify("HeadBucket", c.Bucket, err))
}

// failFast makes one request give up at once when its endpoint cannot be
// connected to at all, instead of retrying for minutes: at the start of a
// run that is configuration to fix, not an outage to ride out.
func failFast(o *s3.Options) { o.Retryer = dialFailsFast{o.Retryer} }

type dialFailsFast struct{ aws.Retryer }

func (r dialFailsFast) IsErrorRetryable(err error) bool {
	return connectError(err) == nil && r.Retryer.IsErrorRetryable(err)
}

func (r dialFailsFast) GetAttemptToken(ctx context.Context) (func(error) error, error) {
	if v2, ok := r.Retryer.(aws.RetryerV2); ok {
		return v2.GetAttemptToken(ctx)
	}
	return r.Retryer.GetInitialToken(), nil
}

// PutBytes stores a small object in one request.
func (c *Client) PutBytes(ctx context.Context, key string, b []byte, contentType string) error {
	_, err := c.Put(ctx, key, b, contentType, Cond{})
	return err
}

// PutBytesIfAbsent stores b only when key does not exist yet (S3's
// conditional write, If-None-Match: *), else fails with ErrExists.
func (c *Client) PutBytesIfAbsent(ctx context.Context, key string, b []byte, contentType string) error {
	_, err := c.Put(ctx, key, b, contentType, Cond{IfAbsent: true})
	return err
}

// Cond makes a write conditional: S3 answers 412, and Put ErrExists, when
// the object exists (IfAbsent) or is no longer the version IfMatch names.
type Cond struct {
	IfAbsent bool
	IfMatch  string // an ETag
}

// Put stores a small object in one request and returns its ETag.
func (c *Client) Put(ctx context.Context, key string, b []byte, contentType string, cond Cond) (string, error) {
	return c.PutReader(ctx, key, bytes.NewReader(b), int64(len(b)), contentType, cond)
}

// PutReader is Put of the size bytes of body, read (and re-read for a
// retry) from it rather than held in memory: a big node's manifest.
func (c *Client) PutReader(ctx context.Context, key string, body io.ReadSeeker, size int64, contentType string, cond Cond) (string, error) {
	in := &s3.PutObjectInput{
		Bucket: &c.Bucket, Key: &key, Body: body,
		ContentLength: aws.Int64(size),
	}
	if contentType != "" {
		in.ContentType = &contentType
	}
	if c.wireChecksum {
		in.ChecksumAlgorithm = types.ChecksumAlgorithmCrc32c
	}
	c.enc.put(in)
	c.ret.put(in)
	if cond.IfAbsent {
		in.IfNoneMatch = aws.String("*")
	}
	if cond.IfMatch != "" {
		in.IfMatch = aws.String(cond.IfMatch)
	}
	out, err := c.s3.PutObject(ctx, in)
	if err != nil {
		err = c.classify("PutObject", key, err)
		if errors.Is(err, ErrExists) && (cond.IfAbsent || cond.IfMatch != "") {
			etag, own, rerr := c.ownWrite(ctx, key, body, size)
			if own {
				return etag, nil
			}
			if rerr != nil {
				// Unknown whose write it is: not ErrExists, which would
				// call our own lock another run's.
				return "", fmt.Errorf("PutObject %s: its condition failed, and reading it back to tell a retry of our own write from another writer's failed: %w", key, rerr)
			}
		}
		return "", err
	}
	return aws.ToString(out.ETag), nil
}

// ownWrite tells whether key holds exactly b, and its ETag: a conditional
// write whose reply was lost is retried by the SDK, and the retry then
// fails its own condition (412) against the object the first try stored.
// Reading it back recognises our own write instead of reporting another
// run's. Every conditional write s3bak makes is unique to its run (a lock
// carries a random token and a fresh lease, a manifest its id and times),
// so equal bytes are our bytes. An object that is gone, or of another
// size, is not ours; err says that it could not be read.
func (c *Client) ownWrite(ctx context.Context, key string, body io.ReadSeeker, size int64) (etag string, own bool, err error) {
	in := &s3.GetObjectInput{Bucket: &c.Bucket, Key: &key}
	c.enc.get(in)
	out, err := c.s3.GetObject(ctx, in)
	if err != nil {
		err = c.classify("GetObject", key, err)
		if errors.Is(err, ErrNotFound) {
			return "", false, nil
		}
		return "", false, err
	}
	defer out.Body.Close()
	if out.ContentLength != nil && *out.ContentLength != size {
		return "", false, nil
	}
	if _, err := body.Seek(0, io.SeekStart); err != nil {
		return "", false, err
	}
	same, err := sameBytes(body, out.Body, size)
	if err != nil {
		return "", false, fmt.Errorf("read %s: %w", key, err)
	}
	return aws.ToString(out.ETag), same, nil
}

// sameBytes reports whether ours and stored hold the same size bytes (and
// stored no more), a piece at a time.
func sameBytes(ours, stored io.Reader, size int64) (bool, error) {
	a, b := make([]byte, 64<<10), make([]byte, 64<<10)
	for size > 0 {
		n := int(min(size, int64(len(a))))
		if _, err := io.ReadFull(ours, a[:n]); err != nil {
			return false, err
		}
		if _, err := io.ReadFull(stored, b[:n]); err != nil {
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return false, nil
			}
			return false, err
		}
		if !bytes.Equal(a[:n], b[:n]) {
			return false, nil
		}
		size -= int64(n)
	}
	if n, _ := stored.Read(b[:1]); n > 0 {
		return false, nil
	}
	return true, nil
}

// Get opens an object, or the n bytes at off when n > 0. Reading a whole
// object whose bytes do not match its stored checksum fails, at its end,
// with ErrChecksum.
func (c *Client) Get(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	in := &s3.GetObjectInput{Bucket: &c.Bucket, Key: &key}
	if n > 0 {
		in.Range = aws.String(fmt.Sprintf("bytes=%d-%d", off, off+n-1))
	}
	c.enc.get(in)
	out, err := c.s3.GetObject(ctx, in)
	if err != nil {
		return nil, c.classify("GetObject", key, err)
	}
	return checksumBody{out.Body}, nil
}

// GetBytes reads a whole small object, refusing more than limit bytes.
func (c *Client) GetBytes(ctx context.Context, key string, limit int64) ([]byte, error) {
	body, err := c.Get(ctx, key, 0, 0)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	b, err := io.ReadAll(io.LimitReader(body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("object %s is larger than %d bytes", key, limit)
	}
	return b, nil
}

// ObjectInfo is what a HEAD or a listing tells about an object.
type ObjectInfo struct {
	Key          string
	Size         int64
	LastModified time.Time
	// StorageClass is what a listing says ("" from a HEAD).
	StorageClass string
}

// Head returns the object's size, or ErrNotFound.
func (c *Client) Head(ctx context.Context, key string) (ObjectInfo, error) {
	in := &s3.HeadObjectInput{Bucket: &c.Bucket, Key: &key}
	c.enc.head(in)
	out, err := c.s3.HeadObject(ctx, in)
	if err != nil {
		return ObjectInfo{}, c.classify("HeadObject", key, err)
	}
	return ObjectInfo{Key: key, Size: aws.ToInt64(out.ContentLength), LastModified: aws.ToTime(out.LastModified)}, nil
}

// List yields every object under prefix, page by page.
func (c *Client) List(ctx context.Context, prefix string) iter.Seq2[ObjectInfo, error] {
	return func(yield func(ObjectInfo, error) bool) {
		p := s3.NewListObjectsV2Paginator(c.s3, &s3.ListObjectsV2Input{Bucket: &c.Bucket, Prefix: &prefix})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				yield(ObjectInfo{}, c.classify("ListObjectsV2", prefix, err))
				return
			}
			for _, o := range page.Contents {
				info := ObjectInfo{Key: aws.ToString(o.Key), Size: aws.ToInt64(o.Size), LastModified: aws.ToTime(o.LastModified),
					StorageClass: string(o.StorageClass)}
				if !yield(info, nil) {
					return
				}
			}
		}
	}
}

// ListDirs yields the "directory" names directly under prefix (which should
// end in "/"), without listing the objects below them.
func (c *Client) ListDirs(ctx context.Context, prefix string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		p := s3.NewListObjectsV2Paginator(c.s3, &s3.ListObjectsV2Input{Bucket: &c.Bucket, Prefix: &prefix, Delimiter: aws.String("/")})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				yield("", c.classify("ListObjectsV2", prefix, err))
				return
			}
			for _, cp := range page.CommonPrefixes {
				if !yield(aws.ToString(cp.Prefix), nil) {
					return
				}
			}
		}
	}
}
