package preflight

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"

	"github.com/s3bak/s3bak/pkg/transfer"
)

// The checks of how objects rest in the bucket.
const (
	CheckEncryption = "encryption"
	CheckObjectLock = "object-lock"
)

// Settings is what the storage checks read of the bucket through the
// backup's own client (*transfer.Client is one).
type Settings interface {
	DefaultEncryption(ctx context.Context) (transfer.BucketEncryption, error)
	ObjectLockConfig(ctx context.Context) (transfer.ObjectLock, error)
}

var _ Settings = (*transfer.Client)(nil)

// storage reports the bucket's default encryption and Object Lock, and
// proves a KMS key usable.
func (r *runner) storage(ctx context.Context) {
	if r.o.Settings == nil {
		r.skip("no client given to read the bucket's settings with", CheckEncryption, CheckObjectLock)
		return
	}
	// Neither needs the other: at once.
	var enc, lock Check
	var wg sync.WaitGroup
	wg.Go(func() { enc = checkEncryption(ctx, r.o) })
	lock = checkObjectLock(ctx, r.o.Settings, r.o.RequireObjectLock)
	wg.Wait()
	r.add(enc)
	r.add(lock)
}

// checkEncryption reports the bucket's default encryption (a refusal to
// read it is a warning: a backup does not need it) and, with --sse
// aws:kms, proves the key usable with a small encrypted PUT, GET and
// DELETE through the backup's client: a key that does not exist, is
// disabled, or that the role or the key policy does not allow fails here
// instead of at the first upload.
func checkEncryption(ctx context.Context, o Options) Check {
	c := Check{ID: CheckEncryption, Status: StatusPass}
	enc, err := o.Settings.DefaultEncryption(ctx)
	switch {
	case accessDenied(err):
		c.Status, c.Detail = StatusWarn, "the bucket's default encryption could not be read: access denied (s3:GetEncryptionConfiguration; not needed to back up)"
	case err != nil:
		c.Status, c.Detail = StatusWarn, "the bucket's default encryption could not be read: "+err.Error()
	default:
		c.Detail = "bucket: " + enc.String()
	}
	if !o.KMS {
		return c
	}
	key := o.KMSKeyID
	if key == "" {
		key = "the account's aws/s3 key"
	}
	if o.Objects == nil {
		c.Detail += "; KMS key " + key + " not probed (no object client)"
		return c
	}
	where, err := probeKMS(ctx, o.Objects, o.Root)
	if err != nil {
		c.Status = StatusFail
		c.Detail += fmt.Sprintf("; KMS key %s is not usable: an encrypted probe of %s failed: %v", key, where, err)
		c.Hint = "the role needs kms:GenerateDataKey and kms:Decrypt on the key, the key policy must allow the role, and the key must exist and be enabled in the bucket's region (give --sse-kms-key-id as its ARN)"
		return c
	}
	c.Detail += fmt.Sprintf("; KMS key %s usable: encrypted PUT, GET and DELETE of %s", key, where)
	return c
}

// probeKMS writes, reads back and deletes a small object encrypted as the
// backup encrypts, under the node's prefix (a name the backup role may
// delete: preflight-probe-…).
func probeKMS(ctx context.Context, obj Objects, root string) (string, error) {
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	key := root + ProbePrefix + "kms-" + hex.EncodeToString(rnd[:])
	body := []byte("s3bak preflight KMS probe; safe to delete\n")
	if _, err := obj.Put(ctx, key, body, "text/plain", transfer.Cond{IfAbsent: true}); err != nil {
		return key, fmt.Errorf("PutObject: %w", err)
	}
	got, _, err := obj.GetSmall(ctx, key, int64(len(body)))
	if err == nil && string(got) != string(body) {
		err = errors.New("it read back other bytes than were written")
	}
	if err != nil {
		_ = obj.Delete(ctx, key)
		return key, fmt.Errorf("GetObject (decrypting needs kms:Decrypt): %w", err)
	}
	if err := obj.Delete(ctx, key); err != nil {
		return key, fmt.Errorf("DeleteObject (the probe is left there: delete it): %w", err)
	}
	return key, nil
}

// checkObjectLock reports the bucket's Object Lock configuration. Without
// --retain-days "not enabled" is a normal answer and a refusal to read it
// a warning; with it, both fail: the backups could not be made immutable.
func checkObjectLock(ctx context.Context, s Settings, required bool) Check {
	c := Check{ID: CheckObjectLock, Status: StatusPass}
	l, err := s.ObjectLockConfig(ctx)
	fail := StatusWarn
	if required {
		fail = StatusFail
	}
	switch {
	case accessDenied(err):
		c.Status, c.Detail = fail, "the bucket's Object Lock configuration could not be read: access denied"
		c.Hint = "grant s3:GetBucketObjectLockConfiguration on the bucket (purge and --retain-days need it)"
	case err != nil:
		c.Status, c.Detail = fail, "the bucket's Object Lock configuration could not be read: "+err.Error()
	case !l.Enabled && required:
		c.Status, c.Detail = StatusFail, "--retain-days needs S3 Object Lock, and the bucket has none"
		c.Hint = "create the bucket with Object Lock (aws s3api create-bucket --object-lock-enabled-for-bucket), or enable it on a versioned bucket (aws s3api put-object-lock-configuration)"
	case !l.Enabled:
		c.Detail = "Object Lock not configured: backups can be deleted by whoever may delete (see --retain-days)"
	case l.DefaultMode != "":
		c.Status, c.Detail = StatusWarn, l.String()+": the default retention also locks the lock, index, markers and run records, whose old versions then cannot be deleted until it ends"
		c.Hint = "prefer no default retention, and --retain-days, which retains only manifests and data"
	case !required:
		c.Detail = l.String() + "; backups are written without retention: give --retain-days to make them immutable"
	default:
		c.Detail = l.String() + "; backups are retained (--retain-days)"
	}
	return c
}
