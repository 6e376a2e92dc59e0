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
func classify(op, key string, err error) error {
	if err == nil {
		return nil
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "NoSuchKey", "NotFound", "NoSuchBucket", "NoSuchUpload":
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
