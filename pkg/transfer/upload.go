package transfer

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// MinPartSize and MaxParts are S3's multipart limits; MaxPutSize is the
// largest object one PUT may store.
const (
	MinPartSize = 5 << 20
	MaxParts    = 10_000
	MaxPutSize  = 5 << 30
)

// PartSizeFor returns the part size for objects made from files of up to
// largest raw bytes: at least min, and large enough that the largest fits
// in MaxParts. A compressed stream's length is unknown while it is
// uploaded, so the size comes from the raw size plus 1% for frame headers.
func PartSizeFor(largest, min int64) int64 {
	need := (largest + largest/100 + MaxParts - 1) / MaxParts
	const mib = 1 << 20
	need = (need + mib - 1) / mib * mib
	return max(min, need, MinPartSize)
}

// Uploader stores data objects and packs: each Upload is one PutObject
// with the object's class and encryption. It also carries the shape of
// large files' multipart uploads (PartSize, Concurrency), which s3bak
// drives itself through StartMultipart, UploadPart and CompleteMultipart
// so that they can be resumed (pkg/backup's stream).
//
// No SDK upload helper is involved: feature/s3/manager is deprecated
// upstream, and what feature/s3/transfermanager would add (parts cut from
// a stream of unknown length) is what s3bak's resumable multipart upload
// already does for large files.
type Uploader struct {
	c           *Client
	partSize    int64
	concurrency int
}

// UploaderOptions size large files' multipart uploads.
type UploaderOptions struct {
	PartSize    int64 // bytes per part, at least MinPartSize
	Concurrency int   // parts in flight per object
}

// NewUploader returns an Uploader. An Upload holds no buffer of its own
// (its body is sent as given, or read once if it cannot be rewound); a
// multipart upload of a large file holds about (Concurrency+1) × PartSize,
// StreamMemory.
func (c *Client) NewUploader(o UploaderOptions) *Uploader {
	return &Uploader{c: c, partSize: max(o.PartSize, MinPartSize), concurrency: max(o.Concurrency, 1)}
}

// PartSize returns the part size of large files' multipart uploads.
func (u *Uploader) PartSize() int64 { return u.partSize }

// Concurrency is the parts in flight per multipart upload.
func (u *Uploader) Concurrency() int { return u.concurrency }

// StreamMemory is what one multipart upload from a stream holds in part
// buffers.
func (u *Uploader) StreamMemory() int64 { return int64(u.concurrency+1) * u.partSize }

// Upload stores b at key in one PUT, with the client's encryption and
// storage class (the Uploader stores data and packs only), and with b's
// CRC32C when the client sends checksums (the one its caller summed, when
// b says so). b is at most MaxPutSize; a stream is a multipart upload the
// caller drives. b's pieces are read again for a retry.
func (u *Uploader) Upload(ctx context.Context, key string, b Body) error {
	size := b.Len()
	if size > MaxPutSize {
		return fmt.Errorf("upload %s: %d bytes is more than one PUT may store (%d): upload it in parts", key, size, int64(MaxPutSize))
	}
	in := &s3.PutObjectInput{Bucket: &u.c.Bucket, Key: &key, Body: b.reader(), ContentLength: aws.Int64(size)}
	if u.c.wireChecksum {
		in.ChecksumAlgorithm = types.ChecksumAlgorithmCrc32c
	}
	u.c.enc.put(in)
	in.StorageClass = u.c.storageClass
	u.c.ret.applyPut(in)
	if u.c.PartChecksums() {
		in.ChecksumCRC32C = aws.String(crcHeader(b.sum()))
	}
	_, err := u.c.s3.PutObject(ctx, in)
	return u.c.classify("upload", key, err)
}
