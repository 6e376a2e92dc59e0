package transfer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

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
	if ce := connectError(err); ce != nil {
		return fmt.Errorf("%s %s: %w", op, key, ce)
	}
	if isNoCredentials(err) {
		return fmt.Errorf("%s %s: %w", op, key, c.noCredentials(err))
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "NoSuchBucket":
			return fmt.Errorf("bucket %q does not exist (check --bucket, the region and the endpoint): %w (%v)", c.Bucket, ErrNotFound, err)
		case "InvalidAccessKeyId":
			return credentialsErr(err, "%s s3://%s/%s: the server does not know this access key id (InvalidAccessKeyId): check the access key id%s, that the key is active, and that the endpoint is the server it belongs to (%v)",
				op, c.Bucket, key, c.credentialsFrom(), err)
		case "SignatureDoesNotMatch":
			return credentialsErr(err, "%s s3://%s/%s: the request signature does not match (SignatureDoesNotMatch): the secret access key is not the one of this access key id; check the secret key%s (%v)",
				op, c.Bucket, key, c.credentialsFrom(), err)
		case "ExpiredToken", "TokenRefreshRequired":
			return credentialsErr(err, "%s s3://%s/%s: the session token has expired (%s): refresh the temporary credentials%s (%v)",
				op, c.Bucket, key, api.ErrorCode(), c.credentialsFrom(), err)
		case "RequestTimeTooSkewed":
			return fmt.Errorf("%s s3://%s/%s: this host's clock is too far from the server's to sign requests (RequestTimeTooSkewed): set it right (NTP, chrony) (%v)",
				op, c.Bucket, key, err)
		case "AccessDenied":
			hint := deniedHint(op, c.Bucket, key)
			if c.ret != nil && iamAction[op] == "s3:PutObject" {
				hint += "; a write with an Object Lock retention (--retain-days) also needs s3:PutObjectRetention"
			}
			return fmt.Errorf("%s s3://%s/%s: access denied: %s: %w", op, c.Bucket, key, hint, err)
		case "NoSuchKey", "NotFound", "NoSuchUpload":
			return fmt.Errorf("%s %s: %w (%v)", op, key, ErrNotFound, err)
		case "PreconditionFailed", "ConditionalRequestConflict":
			return fmt.Errorf("%s %s: %w (%v)", op, key, ErrExists, err)
		}
		if api.ErrorCode() == "InvalidRequest" && strings.Contains(strings.ToLower(api.ErrorMessage()), "server side encryption") {
			hint := "it is encrypted with a customer key (SSE-C): give the key it was written with, --sse-c-key-file"
			if c.enc.customer != nil {
				hint = "its customer key (SSE-C) is not the one given with --sse-c-key-file, or it was not written with SSE-C"
			}
			return fmt.Errorf("%s s3://%s/%s: %s (%v)", op, c.Bucket, key, hint, err)
		}
	}
	var resp *awshttp.ResponseError
	if errors.As(err, &resp) && resp.HTTPStatusCode() == http.StatusNotFound {
		return fmt.Errorf("%s %s: %w (%v)", op, key, ErrNotFound, err)
	}
	return fmt.Errorf("%s %s: %w", op, key, err)
}

// iamAction is the IAM action S3 checks for each request s3bak sends.
var iamAction = map[string]string{
	"PutObject": "s3:PutObject", "CreateMultipartUpload": "s3:PutObject", "UploadPart": "s3:PutObject",
	"CompleteMultipartUpload": "s3:PutObject", "upload": "s3:PutObject",
	"GetObject": "s3:GetObject", "HeadObject": "s3:GetObject",
	"DeleteObject": "s3:DeleteObject", "DeleteObjects": "s3:DeleteObject",
	"HeadBucket": "s3:ListBucket", "ListObjectsV2": "s3:ListBucket",
	"ListMultipartUploads": "s3:ListBucketMultipartUploads", "ListParts": "s3:ListMultipartUploadParts",
	"AbortMultipartUpload": "s3:AbortMultipartUpload",
	"GetObjectRetention":   "s3:GetObjectRetention", "PutObjectRetention": "s3:PutObjectRetention",
	"GetObjectLockConfiguration": "s3:GetBucketObjectLockConfiguration", "GetBucketEncryption": "s3:GetEncryptionConfiguration",
	"ListObjectVersions": "s3:ListBucketVersions",
}

// deniedHint names the action a policy must allow for op, and where: the
// answer to an AccessDenied is a policy to change, not credentials to check.
func deniedHint(op, bucket, key string) string {
	action, ok := iamAction[op]
	if !ok {
		return "the credentials' policy (or the bucket's) does not allow this"
	}
	resource := "arn:aws:s3:::" + bucket
	switch action {
	case "s3:ListBucket", "s3:ListBucketMultipartUploads", "s3:GetBucketObjectLockConfiguration",
		"s3:GetEncryptionConfiguration", "s3:ListBucketVersions":
	default:
		resource += "/" + key
	}
	return fmt.Sprintf("the policy must allow %s on %s (see docs/iam/ for each role's policy; a bucket policy or an SSE-KMS key policy may deny it too)", action, resource)
}

// ErrCredentials marks credentials the server refuses as credentials
// (unknown key, wrong secret, expired token) or that cannot be found: no
// retry helps, the configuration must change.
var ErrCredentials = errors.New("credentials")

// credentialsError is an ErrCredentials with its own message.
type credentialsError struct {
	msg string
	err error
}

func credentialsErr(err error, format string, args ...any) error {
	return &credentialsError{fmt.Sprintf(format, args...), err}
}

func (e *credentialsError) Error() string   { return e.msg }
func (e *credentialsError) Unwrap() []error { return []error{ErrCredentials, e.err} }

// ErrUnreachable means the endpoint could not be connected to at all.
var ErrUnreachable = errors.New("cannot connect")

// ConnectError says which endpoint could not be reached, and why.
type ConnectError struct {
	Endpoint string // scheme://host[:port]
	Reason   string // "connection refused", "no such host", …
	Err      error
}

func (e *ConnectError) Error() string {
	return fmt.Sprintf("cannot connect to %s: %s (check that the server runs and that this host can reach it, and the endpoint: --endpoint-url or AWS_ENDPOINT_URL_S3)",
		e.Endpoint, e.Reason)
}

func (e *ConnectError) Unwrap() []error { return []error{ErrUnreachable, e.Err} }

// connectError recognises a request that never reached the server: its
// connection could not be made (refused, no route, timed out, the host
// name does not resolve).
func connectError(err error) *ConnectError {
	var op *net.OpError
	var dns *net.DNSError
	isDial := errors.As(err, &op) && op.Op == "dial"
	if !isDial && !errors.As(err, &dns) {
		return nil
	}
	ce := &ConnectError{Err: err}
	var ue *url.Error
	if errors.As(err, &ue) {
		if u, perr := url.Parse(ue.URL); perr == nil {
			ce.Endpoint = u.Scheme + "://" + u.Host
		}
	}
	switch {
	case errors.As(err, &dns):
		ce.Reason = "cannot resolve " + dns.Name + ": " + dns.Err
		if ce.Endpoint == "" {
			ce.Endpoint = dns.Name
		}
	case errors.Is(err, syscall.ECONNREFUSED):
		ce.Reason = "connection refused"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		ce.Reason = "no route to the host"
	case op.Timeout():
		ce.Reason = "the connection timed out"
	default:
		ce.Reason = strings.TrimPrefix(op.Err.Error(), "connect: ")
	}
	if ce.Endpoint == "" && op != nil && op.Addr != nil {
		ce.Endpoint = op.Addr.String()
	}
	return ce
}

// isNoCredentials recognises the SDK's failure to find credentials before
// a request is signed ("get identity: get credentials: …"; the SDK has no
// error type for it).
func isNoCredentials(err error) bool {
	return strings.Contains(err.Error(), "get identity: ")
}

// noCredentials says where credentials were looked for, instead of the
// SDK's account of its last provider. The detail names the one source
// whose failure is worth a look: the instance role.
func (c *Client) noCredentials(err error) error {
	imds := "which did not answer (not on EC2?)"
	switch msg := err.Error(); {
	case strings.Contains(msg, "AWS_EC2_METADATA_DISABLED"):
		imds = "which is switched off (AWS_EC2_METADATA_DISABLED)"
	case strings.Contains(msg, "no EC2 IMDS role found"):
		imds = "which answered, but no role is attached to this instance"
	}
	return credentialsErr(err, "no AWS credentials found: s3bak looked in the environment (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), "+
		"the shared config and credentials files (~/.aws/config and ~/.aws/credentials, or AWS_CONFIG_FILE and AWS_SHARED_CREDENTIALS_FILE) under profile %q (--profile or AWS_PROFILE), "+
		"and the EC2 instance role through IMDS, %s; set one of them", c.profileName(), imds)
}

func (c *Client) profileName() string {
	return cmp.Or(c.profile, os.Getenv("AWS_PROFILE"), os.Getenv("AWS_DEFAULT_PROFILE"), "default")
}

// credentialsFrom names where the client's credentials came from, for a
// message about credentials the server refused: ", from the environment
// (…)". The credentials themselves are never shown.
func (c *Client) credentialsFrom() string {
	if c.aws.Credentials == nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	cr, err := c.aws.Credentials.Retrieve(ctx) // cached: the request was just signed with them
	if err != nil || cr.Source == "" {
		return ""
	}
	switch src := cr.Source; {
	case src == "EnvConfigCredentials":
		return " (they come from the environment: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
	case strings.HasPrefix(src, "SharedConfigCredentials"):
		file := strings.TrimSpace(strings.TrimPrefix(src, "SharedConfigCredentials:"))
		return fmt.Sprintf(" (they come from %s, profile %q)", cmp.Or(file, "the shared credentials file"), c.profileName())
	case src == "EC2RoleProvider":
		return " (they come from the EC2 instance role, through IMDS)"
	default:
		return " (they come from " + src + ")"
	}
}
