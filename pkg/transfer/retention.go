package transfer

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"golang.org/x/sync/errgroup"
)

// S3 Object Lock retention modes. Governance protects an object from every
// principal without s3:BypassGovernanceRetention; compliance from everyone,
// the account's root user included, until the date passes.
const (
	RetentionGovernance = "GOVERNANCE"
	RetentionCompliance = "COMPLIANCE"
)

// ParseRetentionMode accepts --retention-mode in any case; "" is governance.
func ParseRetentionMode(s string) (string, error) {
	switch m := strings.ToUpper(strings.TrimSpace(s)); m {
	case "":
		return RetentionGovernance, nil
	case RetentionGovernance, RetentionCompliance:
		return m, nil
	}
	return "", fmt.Errorf("--retention-mode %q: want governance or compliance", s)
}

// Retention asks S3 Object Lock to protect what the client writes: every
// data object and pack (Uploader, StartMultipart), and the small objects
// Retains accepts (the manifests) — never the lock, index, markers or run
// records, which s3bak rewrites and deletes by design.
type Retention struct {
	// Mode is RetentionGovernance or RetentionCompliance; "" with For 0 is
	// no retention.
	Mode string
	// For is how long each object is protected from its write on.
	For time.Duration
	// Retains tells which keys written by Put are retained; nil: none.
	Retains func(key string) bool
}

// ObjectRetention is one object version's Object Lock retention; the zero
// value is none.
type ObjectRetention struct {
	Mode  string    `json:"mode"`
	Until time.Time `json:"until"`
}

// Protects tells whether the retention still forbids deleting the version
// at now.
func (r ObjectRetention) Protects(now time.Time) bool {
	return r.Mode != "" && r.Until.After(now)
}

// Covers tells whether r lasts at least until t.
func (r ObjectRetention) Covers(t time.Time) bool { return r.Mode != "" && !r.Until.Before(t) }

// retention is what a Client sends, and what it wrote in this process:
// objects it stored with a retention need no second look when a backup
// makes sure that everything it references is protected.
type retention struct {
	mode    types.ObjectLockMode
	keep    time.Duration
	retains func(string) bool

	mu      sync.Mutex
	written map[string]time.Time
}

func newRetention(r Retention) (*retention, error) {
	if r.For <= 0 {
		if r.Mode != "" {
			return nil, errors.New("--retention-mode needs --retain-days")
		}
		return nil, nil
	}
	mode, err := ParseRetentionMode(r.Mode)
	if err != nil {
		return nil, err
	}
	return &retention{mode: types.ObjectLockMode(mode), keep: r.For, retains: r.Retains, written: map[string]time.Time{}}, nil
}

// CeilSecond rounds t up to a whole second: S3 keeps retain-until dates to
// the second, and a date with a fraction would read back as earlier than
// asked, and be "extended" on every run.
func CeilSecond(t time.Time) time.Time {
	if u := t.Truncate(time.Second); !u.Equal(t) {
		return u.Add(time.Second)
	}
	return t
}

// until is the retain-until date of an object written now.
func (r *retention) until() time.Time { return CeilSecond(time.Now().UTC().Add(r.keep)) }

// apply sets the lock headers of a new object and notes it as retained.
func (r *retention) apply(key string, mode *types.ObjectLockMode, until **time.Time) {
	if r == nil {
		return
	}
	t := r.until()
	*mode, *until = r.mode, &t
	r.mu.Lock()
	r.written[key] = t
	r.mu.Unlock()
}

func (r *retention) put(in *s3.PutObjectInput) {
	if r != nil && (r.retains == nil || !r.retains(*in.Key)) {
		return
	}
	r.applyPut(in)
}

// applyPut retains a data object or pack. S3 wants a checksum with every
// write that carries a retention (Content-MD5 or x-amz-checksum-*): it is
// asked for even when wire checksums are off.
func (r *retention) applyPut(in *s3.PutObjectInput) {
	if r == nil {
		return
	}
	r.apply(*in.Key, &in.ObjectLockMode, &in.ObjectLockRetainUntilDate)
	if in.ChecksumAlgorithm == "" {
		in.ChecksumAlgorithm = types.ChecksumAlgorithmCrc32c
	}
}

func (r *retention) create(in *s3.CreateMultipartUploadInput) {
	if r == nil {
		return
	}
	r.apply(*in.Key, &in.ObjectLockMode, &in.ObjectLockRetainUntilDate)
}

// writtenUntil is the retain-until date this process stored key with.
func (r *retention) writtenUntil(key string) (time.Time, bool) {
	if r == nil {
		return time.Time{}, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.written[key]
	return t, ok
}

// Retaining tells whether the client writes with a retention.
func (c *Client) Retaining() bool { return c.ret != nil }

// RetainAlso sets which keys written by Put are retained (see
// Retention.Retains); a backup names its manifests once it knows its node.
// It does nothing on a client without retention. Not safe beside a Put:
// call it before the client is shared.
func (c *Client) RetainAlso(retains func(key string) bool) {
	if c.ret != nil {
		c.ret.retains = retains
	}
}

// ObjectLock is a bucket's Object Lock configuration.
type ObjectLock struct {
	Enabled bool
	// DefaultMode and DefaultDays are the bucket's default retention for
	// new objects ("" and 0: none).
	DefaultMode string
	DefaultDays int
}

// String describes the configuration for a report.
func (l ObjectLock) String() string {
	switch {
	case !l.Enabled:
		return "Object Lock not enabled"
	case l.DefaultMode == "":
		return "Object Lock enabled, no default retention"
	}
	return fmt.Sprintf("Object Lock enabled, default retention %s %d days", l.DefaultMode, l.DefaultDays)
}

// ObjectLockConfig reads the bucket's Object Lock configuration. A bucket
// without one is an answer (Enabled false), not an error.
func (c *Client) ObjectLockConfig(ctx context.Context) (ObjectLock, error) {
	out, err := c.s3.GetObjectLockConfiguration(ctx, &s3.GetObjectLockConfigurationInput{Bucket: &c.Bucket})
	if err != nil {
		// A store that does not implement Object Lock has none.
		if hasCode(err, "ObjectLockConfigurationNotFoundError", "NoSuchObjectLockConfiguration", "NotImplemented") {
			return ObjectLock{}, nil
		}
		return ObjectLock{}, c.classify("GetObjectLockConfiguration", "", err)
	}
	var l ObjectLock
	cfg := out.ObjectLockConfiguration
	if cfg == nil || cfg.ObjectLockEnabled != types.ObjectLockEnabledEnabled {
		return l, nil
	}
	l.Enabled = true
	if cfg.Rule != nil && cfg.Rule.DefaultRetention != nil {
		d := cfg.Rule.DefaultRetention
		l.DefaultMode = string(d.Mode)
		l.DefaultDays = int(aws.ToInt32(d.Days)) + 365*int(aws.ToInt32(d.Years))
	}
	return l, nil
}

// ErrNoObjectLock is the answer to retention asked of a bucket without
// Object Lock.
var ErrNoObjectLock = errors.New("the bucket has no S3 Object Lock")

// RequireObjectLock fails, saying how to fix it, unless the bucket has
// Object Lock enabled.
func (c *Client) RequireObjectLock(ctx context.Context) error {
	l, err := c.ObjectLockConfig(ctx)
	if err != nil {
		return fmt.Errorf("--retain-days needs S3 Object Lock, and the bucket's configuration could not be read: %w", err)
	}
	if !l.Enabled {
		return fmt.Errorf("--retain-days: bucket %q: %w; Object Lock is enabled when a bucket is created (aws s3api create-bucket --object-lock-enabled-for-bucket) "+
			"or on a versioned bucket (aws s3api put-object-lock-configuration --object-lock-configuration ObjectLockEnabled=Enabled); or back up without --retain-days",
			c.Bucket, ErrNoObjectLock)
	}
	return nil
}

// GetRetention returns the retention of key's version versionID ("": the
// current one); the zero ObjectRetention when it has none.
func (c *Client) GetRetention(ctx context.Context, key, versionID string) (ObjectRetention, error) {
	in := &s3.GetObjectRetentionInput{Bucket: &c.Bucket, Key: &key}
	if versionID != "" {
		in.VersionId = &versionID
	}
	out, err := c.s3.GetObjectRetention(ctx, in)
	if err != nil {
		if hasCode(err, "NoSuchObjectLockConfiguration", "ObjectLockConfigurationNotFoundError") {
			return ObjectRetention{}, nil
		}
		return ObjectRetention{}, c.classify("GetObjectRetention", key, err)
	}
	if out.Retention == nil || out.Retention.RetainUntilDate == nil {
		return ObjectRetention{}, nil
	}
	return ObjectRetention{Mode: string(out.Retention.Mode), Until: out.Retention.RetainUntilDate.UTC()}, nil
}

// ExtendRetention makes key's current version retained until at least
// until: an object retained longer is left alone (a retention is never
// shortened), and one already retained keeps its mode (compliance is never
// downgraded; raising governance to compliance would need
// s3:BypassGovernanceRetention). An object without a retention gets mode.
// It reports whether it changed anything.
func (c *Client) ExtendRetention(ctx context.Context, key string, until time.Time, mode string) (bool, error) {
	until = CeilSecond(until.UTC())
	if t, ok := c.ret.writtenUntil(key); ok && !t.Before(until) {
		return false, nil // stored by this process, with a retention long enough
	}
	cur, err := c.GetRetention(ctx, key, "")
	if err != nil {
		return false, err
	}
	if cur.Covers(until) {
		return false, nil
	}
	if cur.Mode != "" {
		mode = cur.Mode
	}
	_, err = c.s3.PutObjectRetention(ctx, &s3.PutObjectRetentionInput{
		Bucket: &c.Bucket, Key: &key,
		Retention: &types.ObjectLockRetention{Mode: types.ObjectLockRetentionMode(mode), RetainUntilDate: &until},
	})
	if err != nil {
		return false, c.classify("PutObjectRetention", key, err)
	}
	return true, nil
}

// ExtendAll extends the retention of every key (see ExtendRetention), a
// few at once, and returns how many it extended.
func (c *Client) ExtendAll(ctx context.Context, keys []string, until time.Time, mode string, parallel int) (int, error) {
	var mu sync.Mutex
	extended := 0
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(parallel, 1))
	for _, k := range keys {
		g.Go(func() error {
			changed, err := c.ExtendRetention(gctx, k, until, mode)
			if changed {
				mu.Lock()
				extended++
				mu.Unlock()
			}
			return err
		})
	}
	err := g.Wait()
	return extended, err
}

// Version is one version of an object, or a delete marker, on a versioned
// bucket (Object Lock buckets always are).
type Version struct {
	Key          string
	VersionID    string
	DeleteMarker bool
	Latest       bool
	Size         int64
	LastModified time.Time
}

// ListVersions yields every version and delete marker under prefix.
func (c *Client) ListVersions(ctx context.Context, prefix string) iter.Seq2[Version, error] {
	return func(yield func(Version, error) bool) {
		p := s3.NewListObjectVersionsPaginator(c.s3, &s3.ListObjectVersionsInput{Bucket: &c.Bucket, Prefix: &prefix})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				yield(Version{}, c.classify("ListObjectVersions", prefix, err))
				return
			}
			for _, v := range page.Versions {
				if !yield(Version{Key: aws.ToString(v.Key), VersionID: aws.ToString(v.VersionId), Latest: aws.ToBool(v.IsLatest),
					Size: aws.ToInt64(v.Size), LastModified: aws.ToTime(v.LastModified)}, nil) {
					return
				}
			}
			for _, m := range page.DeleteMarkers {
				if !yield(Version{Key: aws.ToString(m.Key), VersionID: aws.ToString(m.VersionId), DeleteMarker: true,
					Latest: aws.ToBool(m.IsLatest), LastModified: aws.ToTime(m.LastModified)}, nil) {
					return
				}
			}
		}
	}
}

// DeleteVersions removes exactly the versions given (and delete markers),
// DeleteBatch a request, a few requests at once. Deleting a version leaves
// no delete marker, so on an Object Lock bucket nothing is hidden: a
// version S3 still protects (a retention, a legal hold) is refused and
// stays. When S3 refused some versions and failed nothing else, the error
// is a *RefusedError listing them.
func (c *Client) DeleteVersions(ctx context.Context, versions []Version, parallel int) error {
	var mu sync.Mutex
	var refused []Version
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(1, parallel))
	for start := 0; start < len(versions); start += DeleteBatch {
		batch := versions[start:min(start+DeleteBatch, len(versions))]
		g.Go(func() error {
			r, err := c.deleteVersionBatch(gctx, batch)
			mu.Lock()
			refused = append(refused, r...)
			mu.Unlock()
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if len(refused) > 0 {
		return &RefusedError{Bucket: c.Bucket, Refused: refused, Of: len(versions)}
	}
	return nil
}

// RefusedError is the versions S3 refused to delete (AccessDenied): still
// retained or under a legal hold — or, when it refuses them all, a policy
// without s3:DeleteObjectVersion.
type RefusedError struct {
	Bucket  string
	Refused []Version
	Of      int // versions asked to delete
}

func (e *RefusedError) Error() string {
	v := e.Refused[0]
	return fmt.Sprintf("DeleteObjects s3://%s/%s version %s: access denied, and %d more of %d versions: still under Object Lock retention or a legal hold, or the policy does not allow s3:DeleteObjectVersion on arn:aws:s3:::%s/%s",
		e.Bucket, v.Key, v.VersionID, len(e.Refused)-1, e.Of, e.Bucket, v.Key)
}

// deleteVersionBatch deletes one request's versions and returns those S3
// refused.
func (c *Client) deleteVersionBatch(ctx context.Context, versions []Version) ([]Version, error) {
	ids := make([]types.ObjectIdentifier, len(versions))
	for i := range versions {
		ids[i] = types.ObjectIdentifier{Key: &versions[i].Key, VersionId: &versions[i].VersionID}
	}
	out, err := c.s3.DeleteObjects(ctx, &s3.DeleteObjectsInput{
		Bucket: &c.Bucket, Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)},
	})
	if err != nil {
		return nil, c.classify("DeleteObjects", versions[0].Key, err)
	}
	var refused []Version
	for _, e := range out.Errors {
		switch code := aws.ToString(e.Code); {
		case code == "NoSuchKey" || code == "NoSuchVersion":
			continue
		case code == "AccessDenied" || strings.Contains(aws.ToString(e.Message), "WORM protected"):
			// S3 answers AccessDenied; MinIO InvalidRequest, "Object is
			// WORM protected and cannot be overwritten".
			refused = append(refused, Version{Key: aws.ToString(e.Key), VersionID: aws.ToString(e.VersionId)})
			continue
		}
		return refused, fmt.Errorf("DeleteObjects s3://%s/%s version %s: %s: %s (%d of the batch of %d failed)",
			c.Bucket, aws.ToString(e.Key), aws.ToString(e.VersionId), aws.ToString(e.Code), aws.ToString(e.Message), len(out.Errors), len(versions))
	}
	return refused, nil
}

// BucketEncryption is a bucket's default encryption: what S3 applies to an
// object written without an encryption request.
type BucketEncryption struct {
	Algorithm string // AES256, aws:kms, aws:kms:dsse; "" when not configured
	KMSKeyID  string
	BucketKey bool
}

// String describes the default encryption for a report.
func (e BucketEncryption) String() string {
	switch {
	case e.Algorithm == "":
		return "no default encryption configured"
	case e.KMSKeyID != "":
		return fmt.Sprintf("default encryption %s (key %s, bucket key %t)", e.Algorithm, e.KMSKeyID, e.BucketKey)
	}
	return "default encryption " + e.Algorithm
}

// DefaultEncryption reads the bucket's default encryption; a bucket
// without one answers the zero BucketEncryption.
func (c *Client) DefaultEncryption(ctx context.Context) (BucketEncryption, error) {
	out, err := c.s3.GetBucketEncryption(ctx, &s3.GetBucketEncryptionInput{Bucket: &c.Bucket})
	if err != nil {
		if hasCode(err, "ServerSideEncryptionConfigurationNotFoundError") {
			return BucketEncryption{}, nil
		}
		return BucketEncryption{}, c.classify("GetBucketEncryption", "", err)
	}
	var e BucketEncryption
	if cfg := out.ServerSideEncryptionConfiguration; cfg != nil {
		for _, r := range cfg.Rules {
			if d := r.ApplyServerSideEncryptionByDefault; d != nil {
				e.Algorithm, e.KMSKeyID, e.BucketKey = string(d.SSEAlgorithm), aws.ToString(d.KMSMasterKeyID), aws.ToBool(r.BucketKeyEnabled)
				break
			}
		}
	}
	return e, nil
}

// hasCode tells whether err is an S3 error with one of codes.
func hasCode(err error, codes ...string) bool {
	var api smithy.APIError
	if !errors.As(err, &api) {
		return false
	}
	for _, c := range codes {
		if api.ErrorCode() == c {
			return true
		}
	}
	return false
}

// IsAccessDenied tells whether err is S3's refusal by policy.
func IsAccessDenied(err error) bool { return hasCode(err, "AccessDenied", "Forbidden") }
