package preflight

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"iter"
	"strings"

	"github.com/aws/smithy-go"

	"github.com/s3bak/s3bak/pkg/transfer"
)

// Objects is what the permissions check needs of the backup's own S3 client
// (*transfer.Client is one): the probe goes through the very client, with
// its encryption settings, that the backup will use, so a bucket policy
// that demands SSE judges the probe as it would judge the backup.
type Objects interface {
	Put(ctx context.Context, key string, b []byte, contentType string, cond transfer.Cond) (string, error)
	GetSmall(ctx context.Context, key string, limit int64) ([]byte, string, error)
	Delete(ctx context.Context, key string) error
	ListUploads(ctx context.Context, prefix string) iter.Seq2[transfer.Upload, error]
}

var _ Objects = (*transfer.Client)(nil)

// ProbePrefix is the start of the permissions probe's object name, under
// the node's prefix: <prefix>/<cluster>/<node>/preflight-probe-<random>.
const ProbePrefix = "preflight-probe-"

// probeStep is one request of the probe and the IAM action it needs.
type probeStep struct {
	what, action string
	err          error
}

// checkPermissions probes, on a scratch key under the node's prefix, the
// requests a backup makes beyond reading: a conditional PutObject (the
// lock, the manifest), GetObject, DeleteObject (the lock's release, the
// pending marker) and ListMultipartUploads (resume, the sweep of dead
// uploads). A refusal names the IAM action to grant. The probe object is
// deleted again; when DeleteObject is refused, the detail says where it is.
func checkPermissions(ctx context.Context, obj Objects, bucket, root string) Check {
	c := Check{ID: CheckPermissions}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	key := root + ProbePrefix + hex.EncodeToString(rnd[:])
	body := []byte("s3bak preflight probe; safe to delete\n")

	// The listing needs no probe object: it runs beside the write, read
	// and delete, which follow one another, a round trip less.
	uploads := make(chan error, 1)
	go func() {
		var err error
		for _, err = range obj.ListUploads(ctx, root) {
			break
		}
		uploads <- err
	}()
	var steps []probeStep
	_, putErr := obj.Put(ctx, key, body, "text/plain", transfer.Cond{IfAbsent: true})
	steps = append(steps, probeStep{"conditional PutObject (If-None-Match: *)", "s3:PutObject", putErr})
	got, _, err := obj.GetSmall(ctx, key, int64(len(body)))
	switch {
	case putErr != nil && errors.Is(err, transfer.ErrNotFound):
		err = nil // the object was never written, and reading said so: allowed
	case err == nil && string(got) != string(body):
		err = fmt.Errorf("GetObject %s returned other bytes than were written", key)
	}
	steps = append(steps, probeStep{"GetObject", "s3:GetObject", err})
	delErr := obj.Delete(ctx, key) // a missing object is no error: probes the permission either way
	steps = append(steps, probeStep{"ListMultipartUploads", "s3:ListBucketMultipartUploads", <-uploads},
		probeStep{"DeleteObject", "s3:DeleteObject", delErr})

	var denied, objActions, bucketActions, failed []string
	for _, s := range steps {
		switch {
		case s.err == nil:
		case accessDenied(s.err):
			denied = append(denied, fmt.Sprintf("%s denied: missing %s", s.what, s.action))
			if s.action == "s3:ListBucketMultipartUploads" {
				bucketActions = append(bucketActions, s.action)
			} else {
				objActions = append(objActions, s.action)
			}
		default:
			failed = append(failed, fmt.Sprintf("%s failed: %v", s.what, s.err))
		}
	}
	var grants []string
	if len(objActions) > 0 {
		grants = append(grants, fmt.Sprintf("%s on arn:aws:s3:::%s/%s*", strings.Join(objActions, ", "), bucket, root))
	}
	if len(bucketActions) > 0 {
		grants = append(grants, fmt.Sprintf("%s on arn:aws:s3:::%s", strings.Join(bucketActions, ", "), bucket))
	}
	where := fmt.Sprintf("on s3://%s/%s", bucket, key)
	switch {
	case len(denied) > 0:
		c.Status = StatusFail
		c.Detail = strings.Join(append(denied, failed...), "; ") + " (probed " + where + ")"
		c.Hint = "grant " + strings.Join(grants, " and ") + " to this node's role (the backup role of docs/iam/)"
	case len(failed) > 0:
		c.Status = StatusFail
		c.Detail = strings.Join(failed, "; ") + " (probed " + where + ")"
		if putErr != nil && !accessDenied(putErr) {
			c.Hint = "a backup takes its lock with a conditional write (If-None-Match: *): the store must support it"
		}
	default:
		c.Status = StatusPass
		c.Detail = "conditional PutObject, GetObject, ListMultipartUploads and DeleteObject allowed " + where + " (probe deleted)"
	}
	if putErr == nil && delErr != nil {
		c.Detail += "; the probe object is left there: delete it"
	}
	return c
}

// accessDenied recognises S3's refusal by policy; transfer keeps the
// service's error in the chain.
func accessDenied(err error) bool {
	var api smithy.APIError
	return errors.As(err, &api) && (api.ErrorCode() == "AccessDenied" || api.ErrorCode() == "Forbidden")
}
