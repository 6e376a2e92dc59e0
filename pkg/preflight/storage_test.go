package preflight

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/s3bak/s3bak/pkg/transfer"
)

// fakeSettings answers the bucket's settings, or refuses them.
type fakeSettings struct {
	enc     transfer.BucketEncryption
	lock    transfer.ObjectLock
	encErr  error
	lockErr error
}

func (f fakeSettings) DefaultEncryption(context.Context) (transfer.BucketEncryption, error) {
	return f.enc, f.encErr
}

func (f fakeSettings) ObjectLockConfig(context.Context) (transfer.ObjectLock, error) {
	return f.lock, f.lockErr
}

// TestObjectLockCheck: "not configured" is an answer and a refusal a
// warning, unless --retain-days needs Object Lock: then both fail.
func TestObjectLockCheck(t *testing.T) {
	enabled := transfer.ObjectLock{Enabled: true}
	for _, tc := range []struct {
		name     string
		s        fakeSettings
		required bool
		want     Status
		detail   string
	}{
		{"none", fakeSettings{}, false, StatusPass, "not configured"},
		{"none, required", fakeSettings{}, true, StatusFail, "needs S3 Object Lock"},
		{"denied", fakeSettings{lockErr: denied("GetObjectLockConfiguration", "")}, false, StatusWarn, "access denied"},
		{"denied, required", fakeSettings{lockErr: denied("GetObjectLockConfiguration", "")}, true, StatusFail, "access denied"},
		{"broken, required", fakeSettings{lockErr: errors.New("boom")}, true, StatusFail, "boom"},
		{"enabled", fakeSettings{lock: enabled}, false, StatusPass, "give --retain-days"},
		{"enabled, required", fakeSettings{lock: enabled}, true, StatusPass, "backups are retained"},
		{"default retention", fakeSettings{lock: transfer.ObjectLock{Enabled: true, DefaultMode: "GOVERNANCE", DefaultDays: 7}}, true, StatusWarn, "default retention GOVERNANCE 7 days"},
	} {
		c := checkObjectLock(context.Background(), tc.s, tc.required)
		if c.ID != CheckObjectLock || c.Status != tc.want || !strings.Contains(c.Detail, tc.detail) {
			t.Errorf("%s: %+v, want %s with %q", tc.name, c, tc.want, tc.detail)
		}
	}
}

// TestEncryptionCheck: the default encryption is reported (a refusal is a
// warning); with KMS the probe writes, reads and deletes through the
// backup's client, and a refused write fails naming the key.
func TestEncryptionCheck(t *testing.T) {
	ctx := context.Background()
	c := checkEncryption(ctx, Options{Settings: fakeSettings{enc: transfer.BucketEncryption{Algorithm: "aws:kms", KMSKeyID: "k1", BucketKey: true}}})
	if c.Status != StatusPass || !strings.Contains(c.Detail, "default encryption aws:kms (key k1, bucket key true)") {
		t.Errorf("default KMS: %+v", c)
	}
	c = checkEncryption(ctx, Options{Settings: fakeSettings{encErr: denied("GetBucketEncryption", "")}})
	if c.Status != StatusWarn || !strings.Contains(c.Detail, "s3:GetEncryptionConfiguration") {
		t.Errorf("denied: %+v", c)
	}
	obj := &fakeObjects{objects: map[string][]byte{}, deny: map[string]bool{}}
	c = checkEncryption(ctx, Options{Settings: fakeSettings{}, KMS: true, KMSKeyID: "alias/backup", Objects: obj, Root: "p/c/n/"})
	if c.Status != StatusPass || !strings.Contains(c.Detail, "KMS key alias/backup usable") || len(obj.objects) != 0 {
		t.Errorf("usable key: %+v, left %v", c, obj.objects)
	}
	obj.deny["put"] = true
	c = checkEncryption(ctx, Options{Settings: fakeSettings{}, KMS: true, Objects: obj, Root: "p/c/n/"})
	if c.Status != StatusFail || !strings.Contains(c.Detail, "aws/s3 key is not usable") || !strings.Contains(c.Hint, "kms:GenerateDataKey") {
		t.Errorf("refused key: %+v", c)
	}
}
