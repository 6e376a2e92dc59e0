package transfer

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Part is one stored part of a multipart upload: what completing the
// upload, and checking a resumed one, needs.
type Part struct {
	Number int32  `json:"n"`
	ETag   string `json:"etag"`
	CRC32C string `json:"crc,omitempty"` // base64, as S3 returns it; empty without wire checksums
	Size   int64  `json:"size"`
}

// StartMultipart begins a multipart upload of key and returns its upload
// id. Unlike Uploader, the caller drives the parts, so that an upload cut
// short can be continued by another process from its recorded parts.
func (c *Client) StartMultipart(ctx context.Context, key string) (Upload, error) {
	in := &s3.CreateMultipartUploadInput{Bucket: &c.Bucket, Key: &key}
	if c.PartChecksums() {
		in.ChecksumAlgorithm = types.ChecksumAlgorithmCrc32c
	}
	c.enc.create(in)
	in.StorageClass = c.storageClass // only data is uploaded in parts
	c.ret.create(in)
	out, err := c.s3.CreateMultipartUpload(ctx, in)
	if err != nil {
		return Upload{}, c.classify("CreateMultipartUpload", key, err)
	}
	return Upload{Key: key, ID: aws.ToString(out.UploadId)}, nil
}

// UploadPart stores body as part n of u, with a CRC32C the server checks
// when wire checksums are on.
func (c *Client) UploadPart(ctx context.Context, u Upload, n int32, body Body) (Part, error) {
	size := body.Len()
	in := &s3.UploadPartInput{
		Bucket: &c.Bucket, Key: &u.Key, UploadId: &u.ID, PartNumber: aws.Int32(n),
		Body: body.reader(), ContentLength: aws.Int64(size),
	}
	var crc string
	if c.PartChecksums() {
		crc = crcHeader(body.sum())
		in.ChecksumCRC32C = &crc
	}
	c.enc.part(in)
	out, err := c.s3.UploadPart(ctx, in)
	if err != nil {
		return Part{}, c.classify("UploadPart", fmt.Sprintf("%s part %d", u.Key, n), err)
	}
	return Part{Number: n, ETag: aws.ToString(out.ETag), CRC32C: crc, Size: size}, nil
}

// crcHeader is a CRC32C as its x-amz-checksum-crc32c header carries it.
func crcHeader(crc uint32) string {
	var sum [4]byte
	binary.BigEndian.PutUint32(sum[:], crc)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// PartChecksums tells whether parts carry a CRC32C: with wire checksums,
// and always on an upload with a retention, for which S3 wants a checksum
// with every part.
func (c *Client) PartChecksums() bool { return c.wireChecksum || c.ret != nil }

// ListParts returns the parts of u the server has, by number.
func (c *Client) ListParts(ctx context.Context, u Upload) (map[int32]Part, error) {
	parts := map[int32]Part{}
	in := &s3.ListPartsInput{Bucket: &c.Bucket, Key: &u.Key, UploadId: &u.ID}
	c.enc.listParts(in)
	for {
		page, err := c.s3.ListParts(ctx, in)
		if err != nil {
			return nil, c.classify("ListParts", u.Key, err)
		}
		for _, p := range page.Parts {
			n := aws.ToInt32(p.PartNumber)
			parts[n] = Part{Number: n, ETag: aws.ToString(p.ETag), CRC32C: aws.ToString(p.ChecksumCRC32C), Size: aws.ToInt64(p.Size)}
		}
		if !aws.ToBool(page.IsTruncated) {
			return parts, nil
		}
		in.PartNumberMarker = page.NextPartNumberMarker
	}
}

// CompleteMultipart makes u's parts, in order, the object.
func (c *Client) CompleteMultipart(ctx context.Context, u Upload, parts []Part) error {
	done := make([]types.CompletedPart, len(parts))
	for i, p := range parts {
		done[i] = types.CompletedPart{PartNumber: aws.Int32(p.Number), ETag: aws.String(p.ETag)}
		if p.CRC32C != "" {
			done[i].ChecksumCRC32C = aws.String(p.CRC32C)
		}
	}
	in := &s3.CompleteMultipartUploadInput{
		Bucket: &c.Bucket, Key: &u.Key, UploadId: &u.ID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: done},
	}
	c.enc.complete(in)
	_, err := c.s3.CompleteMultipartUpload(ctx, in)
	err = c.classify("CompleteMultipartUpload", u.Key, err)
	if errors.Is(err, ErrNotFound) && c.completedBefore(ctx, u.Key, parts) {
		// The first try completed it and its reply was lost: the retry
		// found no upload any more. The object is there, of the parts'
		// size, under a key named by its content.
		return nil
	}
	return err
}

// completedBefore tells whether key holds an object of exactly the parts'
// bytes.
func (c *Client) completedBefore(ctx context.Context, key string, parts []Part) bool {
	var size int64
	for _, p := range parts {
		size += p.Size
	}
	info, err := c.Head(ctx, key)
	return err == nil && info.Size == size
}
