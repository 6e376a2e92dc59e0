package transfer

import (
	"strings"
	"testing"
)

// TestDeniedHintNamesTheAction: an AccessDenied names the IAM action and the
// resource to allow it on, not "check the credentials".
func TestDeniedHintNamesTheAction(t *testing.T) {
	for _, tt := range []struct{ op, want string }{
		{"PutObject", "s3:PutObject on arn:aws:s3:::b/p/c/n/lock.json"},
		{"UploadPart", "s3:PutObject on arn:aws:s3:::b/p/c/n/lock.json"},
		{"HeadObject", "s3:GetObject on arn:aws:s3:::b/p/c/n/lock.json"},
		{"DeleteObjects", "s3:DeleteObject on arn:aws:s3:::b/p/c/n/lock.json"},
		{"ListObjectsV2", "s3:ListBucket on arn:aws:s3:::b "},
		{"ListMultipartUploads", "s3:ListBucketMultipartUploads on arn:aws:s3:::b "},
		{"ListParts", "s3:ListMultipartUploadParts on arn:aws:s3:::b/p/c/n/lock.json"},
		{"AbortMultipartUpload", "s3:AbortMultipartUpload on arn:aws:s3:::b/p/c/n/lock.json"},
	} {
		if got := deniedHint(tt.op, "b", "p/c/n/lock.json"); !strings.Contains(got, tt.want) {
			t.Errorf("%s: %q does not say %q", tt.op, got, tt.want)
		}
	}
}
