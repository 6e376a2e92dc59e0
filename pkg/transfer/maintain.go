package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sync/errgroup"
)

// DeleteBatch is the most keys one DeleteObjects request takes.
const DeleteBatch = 1000

// GetSmall reads a whole small object with its ETag, for read-modify-write
// with Put's IfMatch.
func (c *Client) GetSmall(ctx context.Context, key string, limit int64) ([]byte, string, error) {
	in := &s3.GetObjectInput{Bucket: &c.Bucket, Key: &key}
	c.enc.get(in)
	out, err := c.s3.GetObject(ctx, in)
	if err != nil {
		return nil, "", c.classify("GetObject", key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(io.LimitReader(out.Body, limit+1))
	if err != nil {
		return nil, "", fmt.Errorf("read %s: %w", key, err)
	}
	if int64(len(b)) > limit {
		return nil, "", fmt.Errorf("object %s is larger than %d bytes", key, limit)
	}
	return b, aws.ToString(out.ETag), nil
}

// Delete removes one object; a missing object is not an error.
func (c *Client) Delete(ctx context.Context, key string) error {
	_, err := c.s3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &c.Bucket, Key: &key})
	if err = c.classify("DeleteObject", key, err); errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// DeleteMany removes keys with DeleteObjects, DeleteBatch keys a request
// and a few requests at once: one-by-one deletes take days for millions of
// objects. It stops at the first failed request or key.
func (c *Client) DeleteMany(ctx context.Context, keys []string, parallel int) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(1, parallel))
	for start := 0; start < len(keys); start += DeleteBatch {
		batch := keys[start:min(start+DeleteBatch, len(keys))]
		g.Go(func() error { return c.deleteBatch(gctx, batch) })
	}
	return g.Wait()
}

func (c *Client) deleteBatch(ctx context.Context, keys []string) error {
	ids := make([]types.ObjectIdentifier, len(keys))
	for i := range keys {
		ids[i] = types.ObjectIdentifier{Key: &keys[i]}
	}
	out, err := c.s3.DeleteObjects(ctx, &s3.DeleteObjectsInput{
		Bucket: &c.Bucket, Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)},
	})
	if err != nil {
		return c.classify("DeleteObjects", keys[0], err)
	}
	for _, e := range out.Errors {
		if aws.ToString(e.Code) == "NoSuchKey" {
			continue
		}
		if aws.ToString(e.Code) == "AccessDenied" {
			return fmt.Errorf("DeleteObjects s3://%s/%s: access denied: %s (%d of the batch of %d failed)",
				c.Bucket, aws.ToString(e.Key), deniedHint("DeleteObject", c.Bucket, aws.ToString(e.Key)), len(out.Errors), len(keys))
		}
		return fmt.Errorf("DeleteObjects s3://%s/%s: %s: %s (%d of the batch of %d failed)",
			c.Bucket, aws.ToString(e.Key), aws.ToString(e.Code), aws.ToString(e.Message), len(out.Errors), len(keys))
	}
	return nil
}

// Upload is a multipart upload that was started and neither completed nor
// aborted: its parts are billed but invisible in listings of objects.
type Upload struct {
	Key       string
	ID        string
	Initiated time.Time
}

// ListUploads yields the unfinished multipart uploads under prefix. The
// bucket's whole list is read and filtered here: MinIO takes a Prefix only
// when it is a complete key, and unfinished uploads are few.
func (c *Client) ListUploads(ctx context.Context, prefix string) iter.Seq2[Upload, error] {
	return func(yield func(Upload, error) bool) {
		in := &s3.ListMultipartUploadsInput{Bucket: &c.Bucket}
		for {
			page, err := c.s3.ListMultipartUploads(ctx, in)
			if err != nil {
				yield(Upload{}, c.classify("ListMultipartUploads", prefix, err))
				return
			}
			for _, u := range page.Uploads {
				if !strings.HasPrefix(aws.ToString(u.Key), prefix) {
					continue
				}
				up := Upload{Key: aws.ToString(u.Key), ID: aws.ToString(u.UploadId), Initiated: aws.ToTime(u.Initiated)}
				if !yield(up, nil) {
					return
				}
			}
			if !aws.ToBool(page.IsTruncated) {
				return
			}
			in.KeyMarker, in.UploadIdMarker = page.NextKeyMarker, page.NextUploadIdMarker
		}
	}
}

// Abort drops a multipart upload and its parts.
func (c *Client) Abort(ctx context.Context, u Upload) error {
	_, err := c.s3.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &c.Bucket, Key: &u.Key, UploadId: &u.ID})
	if err = c.classify("AbortMultipartUpload", u.Key, err); errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}
