package transfer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

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

// ErrUnknownSize is Upload's answer to a body of unknown length.
var ErrUnknownSize = errors.New("an object of unknown size cannot be stored in one PUT: upload it in parts (StartMultipart, UploadPart, CompleteMultipart)")

// Upload stores the size bytes r yields at key in one PUT, with the
// client's encryption and storage class (the Uploader stores data and
// packs only). size must be known, and at most MaxPutSize; a stream of
// unknown length is a multipart upload the caller drives. A body that
// cannot be rewound (not an io.ReadSeeker) is read into memory first, so
// that a retry — after a body damaged on the way, say — can send it again.
func (u *Uploader) Upload(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := checkPutSize(key, size); err != nil {
		return err
	}
	body, ok := r.(io.ReadSeeker)
	if !ok {
		b := make([]byte, size)
		if _, err := io.ReadFull(r, b); err != nil {
			return fmt.Errorf("upload %s: reading its %d bytes: %w", key, size, err)
		}
		body = bytes.NewReader(b)
	}
	return u.put(ctx, key, body, size, nil)
}

// UploadBody is Upload of a Body, with the CRC32C its caller summed when
// it says so: the SDK would sum the body once more before sending it.
func (u *Uploader) UploadBody(ctx context.Context, key string, b Body) error {
	size := b.Len()
	if err := checkPutSize(key, size); err != nil {
		return err
	}
	var crc *string
	if b.Summed && u.c.PartChecksums() {
		crc = aws.String(crcHeader(b.CRC32C))
	}
	return u.put(ctx, key, b.reader(), size, crc)
}

func checkPutSize(key string, size int64) error {
	switch {
	case size < 0:
		return fmt.Errorf("upload %s: %w", key, ErrUnknownSize)
	case size > MaxPutSize:
		return fmt.Errorf("upload %s: %d bytes is more than one PUT may store (%d): upload it in parts", key, size, int64(MaxPutSize))
	}
	return nil
}

// put stores body in one PUT; crc, when set, is its CRC32C header.
func (u *Uploader) put(ctx context.Context, key string, body io.ReadSeeker, size int64, crc *string) error {
	in := &s3.PutObjectInput{Bucket: &u.c.Bucket, Key: &key, Body: body, ContentLength: aws.Int64(size)}
	if u.c.wireChecksum {
		in.ChecksumAlgorithm = types.ChecksumAlgorithmCrc32c
	}
	u.c.enc.put(in)
	in.StorageClass = u.c.storageClass
	u.c.ret.applyPut(in)
	if crc != nil {
		in.ChecksumCRC32C = crc
	}
	_, err := u.c.s3.PutObject(ctx, in)
	return u.c.classify("upload", key, err)
}
