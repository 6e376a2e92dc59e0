package transfer

import (
	"errors"
	"fmt"
	"net/http"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
)

var (
	// ErrNotFound means the object or bucket does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists means a conditional create found the object already there.
	ErrExists = errors.New("already exists")
)

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
