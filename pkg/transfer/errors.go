package transfer

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
)

var (
	// ErrNotFound means the object or bucket does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists means a conditional create found the object already there.
	ErrExists = errors.New("already exists")
	// ErrChecksum means an object's bytes, as read, do not match the
	// checksum S3 stored with it (the SDK checks whole-object GETs): they
	// were damaged on the way, and a fresh read may be whole, or in the
	// bucket.
	ErrChecksum = errors.New("the bytes read do not match the object's checksum")
)

// checksumBody marks the SDK's failed check of a body against the
// object's stored checksum as ErrChecksum, so that a reader can tell
// damaged bytes from a broken connection.
type checksumBody struct{ io.ReadCloser }

func (b checksumBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF && isChecksumMismatch(err) {
		err = fmt.Errorf("%w: %w", ErrChecksum, err)
	}
	return n, err
}

// isChecksumMismatch recognises the SDK's checksum validation error. Its
// type is unexported (service/internal/checksum.validationError), so it is
// known by its type's name and its message; TestFlippedBitIsErrChecksum
// notices an SDK that changes both.
func isChecksumMismatch(err error) bool {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if fmt.Sprintf("%T", e) == "checksum.validationError" {
			return true
		}
	}
	return strings.Contains(err.Error(), "checksum did not match")
}

// classify maps S3's answers onto the errors callers act on, keeping the
// original for the message. Credentials never appear in SDK errors.
func (c *Client) classify(op, key string, err error) error {
	if err == nil {
		return nil
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "NoSuchBucket":
			return fmt.Errorf("bucket %q does not exist (check --bucket, the region and the endpoint): %w (%v)", c.Bucket, ErrNotFound, err)
		case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken":
			return fmt.Errorf("%s s3://%s/%s: access denied: check the credentials and that their policy allows this on the bucket: %w", op, c.Bucket, key, err)
		case "NoSuchKey", "NotFound", "NoSuchUpload":
			return fmt.Errorf("%s %s: %w (%v)", op, key, ErrNotFound, err)
		case "PreconditionFailed", "ConditionalRequestConflict":
			return fmt.Errorf("%s %s: %w (%v)", op, key, ErrExists, err)
		}
	}
	var resp *awshttp.ResponseError
	if errors.As(err, &resp) && resp.HTTPStatusCode() == http.StatusNotFound {
		return fmt.Errorf("%s %s: %w (%v)", op, key, ErrNotFound, err)
	}
	return fmt.Errorf("%s %s: %w", op, key, err)
}
