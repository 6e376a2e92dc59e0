package transfer

import (
	"context"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/smithy-go/middleware"
)

// checksumMiddlewareID is the SDK's middleware that computes a request's
// x-amz-checksum-* header; it skips its own SHA-256 of the body when the
// payload hash is already decided.
const checksumMiddlewareID = "AWSChecksum:ComputeInputPayloadChecksum"

// unsignedPayload makes uploads over plain HTTP (MinIO and other
// S3-compatible stores on a private network) sign their body as
// UNSIGNED-PAYLOAD instead of by its SHA-256. Over HTTPS the SDK already
// does so, with the CRC32C in a trailer. The SHA-256 costs as much CPU as
// compressing a chunk does, once in s3bak and once again in the server
// that checks it, and it protects nothing that is not protected already:
// the body's CRC32C header is still signed and checked by the server, and
// every byte is checked against s3bak's own SHA-256 on restore and verify.
//
// It is added only when uploads carry a CRC32C (never with
// --checksum-calculation when_required), and only to the two operations
// that carry file data.
func unsignedPayload(stack *middleware.Stack) error {
	if _, ok := stack.Finalize.Get(checksumMiddlewareID); !ok {
		return nil
	}
	return stack.Finalize.Insert(middleware.FinalizeMiddlewareFunc("s3bak:UnsignedPayload",
		func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
			switch awsmiddleware.GetOperationName(ctx) {
			case "PutObject", "UploadPart":
				if v4.GetPayloadHash(ctx) == "" {
					ctx = v4.SetPayloadHash(ctx, "UNSIGNED-PAYLOAD")
				}
			}
			return next.HandleFinalize(ctx, in)
		}), checksumMiddlewareID, middleware.Before)
}
