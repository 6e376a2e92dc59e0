package transfer

import (
	"crypto/md5"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// SSE modes: S3-managed keys (SSE-S3) and KMS keys (SSE-KMS). SSE-C is
// chosen by a CustomerKey instead.
const (
	SSEAES256 = "AES256"
	SSEKMS    = "aws:kms"
)

// SSE says how every object s3bak writes is encrypted at rest. The zero
// value sends nothing: the bucket's default encryption applies.
type SSE struct {
	// Mode is "", SSEAES256 or SSEKMS.
	Mode string
	// KMSKeyID is the KMS key (id, ARN or alias) for SSEKMS; empty is the
	// account's AWS-managed key aws/s3.
	KMSKeyID string
	// NoBucketKey turns the S3 Bucket Key off for SSEKMS. It is on by
	// default: S3 then asks KMS for a bucket-level key now and then instead
	// of a data key for every object, which cuts KMS requests (and their
	// cost) by orders of magnitude.
	NoBucketKey bool
	// CustomerKey, 32 bytes, is SSE-C: S3 encrypts with this key and keeps
	// only its salted HMAC, so every read (GET, HEAD, ranged GET) and every
	// part of a multipart upload must send it again. Excludes Mode.
	CustomerKey []byte
}

// String never shows the customer key.
func (s SSE) String() string {
	switch {
	case len(s.CustomerKey) > 0:
		return "SSE-C"
	case s.Mode == SSEKMS && s.KMSKeyID != "":
		return s.Mode + " (key " + s.KMSKeyID + ")"
	case s.Mode != "":
		return s.Mode
	}
	return "bucket default"
}

// GoString keeps %#v from printing the key.
func (s SSE) GoString() string { return "transfer.SSE{" + s.String() + "}" }

// LogValue keeps slog from printing the key.
func (s SSE) LogValue() slog.Value { return slog.StringValue(s.String()) }

// ParseSSEMode accepts the --sse spellings: aws:kms (or kms) and AES256
// (or sse-s3); "" is none.
func ParseSSEMode(s string) (string, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "":
		return "", nil
	case "aws:kms", "kms", "sse-kms":
		return SSEKMS, nil
	case "aes256", "sse-s3":
		return SSEAES256, nil
	}
	return "", fmt.Errorf("--sse %q: want aws:kms or AES256 (for SSE-C, give --sse-c-key-file)", s)
}

// ParseCustomerKey reads an SSE-C key file's contents: 32 raw bytes, or
// their base64 (a trailing newline allowed). The error never quotes it.
func ParseCustomerKey(b []byte) ([]byte, error) {
	if len(b) == 32 {
		return slices.Clone(b), nil
	}
	t := strings.TrimSpace(string(b))
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(t); err == nil && len(k) == 32 {
			return k, nil
		}
	}
	return nil, fmt.Errorf("an SSE-C key is 32 bytes, raw or base64 (e.g. from 'openssl rand 32 > key'); this one is %d bytes and not the base64 of 32", len(b))
}

// customerKey is SSE-C's headers, ready to send.
type customerKey struct{ alg, key, md5 *string }

// String never shows the key.
func (k *customerKey) String() string { return "SSE-C key" }

// encryption is what a Client sends with its requests.
type encryption struct {
	mode      types.ServerSideEncryption
	kmsKey    *string
	bucketKey *bool
	customer  *customerKey // nil: no SSE-C
}

func newEncryption(s SSE) (encryption, error) {
	var e encryption
	mode, err := ParseSSEMode(s.Mode)
	if err != nil {
		return e, err
	}
	if s.KMSKeyID != "" && mode != SSEKMS {
		return e, errors.New("--sse-kms-key-id needs --sse aws:kms")
	}
	if len(s.CustomerKey) > 0 {
		if mode != "" {
			return e, fmt.Errorf("--sse %s and --sse-c-key-file exclude each other: SSE-C is its own encryption", mode)
		}
		if len(s.CustomerKey) != 32 {
			return e, fmt.Errorf("an SSE-C key is 32 bytes, not %d", len(s.CustomerKey))
		}
		sum := md5.Sum(s.CustomerKey)
		e.customer = &customerKey{
			alg: aws.String("AES256"),
			key: aws.String(base64.StdEncoding.EncodeToString(s.CustomerKey)),
			md5: aws.String(base64.StdEncoding.EncodeToString(sum[:])),
		}
		return e, nil
	}
	e.mode = types.ServerSideEncryption(mode)
	if mode == SSEKMS {
		if s.KMSKeyID != "" {
			e.kmsKey = aws.String(s.KMSKeyID)
		}
		e.bucketKey = aws.Bool(!s.NoBucketKey)
	}
	return e, nil
}

func (e encryption) put(in *s3.PutObjectInput) {
	in.ServerSideEncryption, in.SSEKMSKeyId, in.BucketKeyEnabled = e.mode, e.kmsKey, e.bucketKey
	if k := e.customer; k != nil {
		in.SSECustomerAlgorithm, in.SSECustomerKey, in.SSECustomerKeyMD5 = k.alg, k.key, k.md5
	}
}

func (e encryption) create(in *s3.CreateMultipartUploadInput) {
	in.ServerSideEncryption, in.SSEKMSKeyId, in.BucketKeyEnabled = e.mode, e.kmsKey, e.bucketKey
	if k := e.customer; k != nil {
		in.SSECustomerAlgorithm, in.SSECustomerKey, in.SSECustomerKeyMD5 = k.alg, k.key, k.md5
	}
}

// The requests below carry only SSE-C's key: S3 needs it to read an
// object, to encrypt each part, and (the parts having checksums) to list
// and complete an upload.

func (e encryption) part(in *s3.UploadPartInput) {
	if k := e.customer; k != nil {
		in.SSECustomerAlgorithm, in.SSECustomerKey, in.SSECustomerKeyMD5 = k.alg, k.key, k.md5
	}
}

func (e encryption) listParts(in *s3.ListPartsInput) {
	if k := e.customer; k != nil {
		in.SSECustomerAlgorithm, in.SSECustomerKey, in.SSECustomerKeyMD5 = k.alg, k.key, k.md5
	}
}

func (e encryption) complete(in *s3.CompleteMultipartUploadInput) {
	if k := e.customer; k != nil {
		in.SSECustomerAlgorithm, in.SSECustomerKey, in.SSECustomerKeyMD5 = k.alg, k.key, k.md5
	}
}

func (e encryption) get(in *s3.GetObjectInput) {
	if k := e.customer; k != nil {
		in.SSECustomerAlgorithm, in.SSECustomerKey, in.SSECustomerKeyMD5 = k.alg, k.key, k.md5
	}
}

func (e encryption) head(in *s3.HeadObjectInput) {
	if k := e.customer; k != nil {
		in.SSECustomerAlgorithm, in.SSECustomerKey, in.SSECustomerKeyMD5 = k.alg, k.key, k.md5
	}
}

// Storage classes s3bak stores data in. Manifests, checkpoints, summaries, markers and
// the lock are always STANDARD: they are small and read often.
var storageClasses = []types.StorageClass{
	types.StorageClassStandard, types.StorageClassStandardIa, types.StorageClassOnezoneIa,
	types.StorageClassIntelligentTiering, types.StorageClassGlacierIr, types.StorageClassReducedRedundancy,
}

// ParseStorageClass checks --storage-class: "" is the bucket's default
// (STANDARD). Classes whose objects must be restored before they can be
// read are refused: a restore from them would fail object by object.
func ParseStorageClass(s string) (types.StorageClass, error) {
	c := types.StorageClass(strings.ToUpper(strings.TrimSpace(s)))
	switch {
	case c == "":
		return "", nil
	case slices.Contains(storageClasses, c):
		return c, nil
	case c == types.StorageClassGlacier || c == types.StorageClassDeepArchive:
		return "", fmt.Errorf("--storage-class %s: objects in %s must be restored (RestoreObject, hours) before they can be read, and s3bak has no restore flow for them; use GLACIER_IR (instant reads) or a lifecycle rule that moves old backups to %s", c, c, c)
	}
	names := make([]string, len(storageClasses))
	for i, sc := range storageClasses {
		names[i] = string(sc)
	}
	return "", fmt.Errorf("--storage-class %q: want one of %s", s, strings.Join(names, ", "))
}

// KMS tells whether the client encrypts with SSE-KMS, and with which key
// ("" the account's aws/s3 key), for preflight's probe of the key.
func (c *Client) KMS() (bool, string) {
	return c.enc.mode == types.ServerSideEncryptionAwsKms, aws.ToString(c.enc.kmsKey)
}
