package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/pflag"

	"github.com/s3bak/s3bak/pkg/transfer"
)

// storageFlags are the global flags for how objects rest in S3: their
// encryption and, for data, their storage class.
type storageFlags struct {
	sse          string
	sseKMSKeyID  string
	noBucketKey  bool
	sseCKeyFile  string
	storageClass string
	// retainDays and retentionMode protect each backup with S3 Object
	// Lock (see retention.go).
	retainDays    int
	retentionMode string
}

func (s *storageFlags) register(f *pflag.FlagSet) {
	f.StringVar(&s.sse, "sse", "", "server-side encryption of every object written: aws:kms or AES256 (default: the bucket's)")
	f.StringVar(&s.sseKMSKeyID, "sse-kms-key-id", "", "KMS key (id, ARN or alias/…) for --sse aws:kms (default: the account's aws/s3 key)")
	f.BoolVar(&s.noBucketKey, "sse-no-bucket-key", false, "with --sse aws:kms, do not use an S3 Bucket Key (every object then costs a KMS request)")
	f.StringVar(&s.sseCKeyFile, "sse-c-key-file", "", "SSE-C: encrypt with this customer key (a file of 32 bytes, raw or base64), needed again for every read")
	f.StringVar(&s.storageClass, "storage-class", "",
		"storage class of data objects and packs: STANDARD, STANDARD_IA, ONEZONE_IA, INTELLIGENT_TIERING, GLACIER_IR "+
			"(manifests, checkpoints, summaries, markers and the lock stay STANDARD)")
	f.IntVar(&s.retainDays, "retain-days", 0,
		"backup: protect the manifest and every object the backup references with S3 Object Lock until at least N days after its start "+
			"(the bucket must have Object Lock enabled; reused objects' retention is extended)")
	f.StringVar(&s.retentionMode, "retention-mode", "", "with --retain-days: governance (default; s3:BypassGovernanceRetention can lift it) or compliance (nobody can)")
}

// options fills the client options' encryption and storage class; its
// errors are usage errors and never quote the key.
func (s *storageFlags) options(o *transfer.Options) error {
	mode, err := transfer.ParseSSEMode(s.sse)
	if err != nil {
		return err
	}
	o.SSE = transfer.SSE{Mode: mode, KMSKeyID: s.sseKMSKeyID, NoBucketKey: s.noBucketKey}
	if s.sseCKeyFile != "" {
		b, err := os.ReadFile(s.sseCKeyFile)
		if err != nil {
			return fmt.Errorf("--sse-c-key-file: %w", err)
		}
		if o.SSE.CustomerKey, err = transfer.ParseCustomerKey(b); err != nil {
			return fmt.Errorf("--sse-c-key-file %s: %w", s.sseCKeyFile, err)
		}
	}
	if _, err := transfer.ParseStorageClass(s.storageClass); err != nil {
		return err
	}
	o.StorageClass = s.storageClass
	return s.retention(o)
}

// retention fills the client options' Object Lock retention; the keys it
// applies to beyond data (the manifests) are the caller's to set.
func (s *storageFlags) retention(o *transfer.Options) error {
	switch {
	case s.retainDays < 0:
		return fmt.Errorf("--retain-days %d: want a number of days, at least 1 (0: no retention)", s.retainDays)
	case s.retainDays > maxRetainDays:
		return fmt.Errorf("--retain-days %d: at most %d (100 years)", s.retainDays, maxRetainDays)
	case s.retainDays == 0 && s.retentionMode != "":
		return errors.New("--retention-mode needs --retain-days")
	case s.retainDays == 0:
		return nil
	}
	mode, err := transfer.ParseRetentionMode(s.retentionMode)
	if err != nil {
		return err
	}
	o.Retention = transfer.Retention{Mode: mode, For: time.Duration(s.retainDays) * 24 * time.Hour}
	return nil
}

// maxRetainDays is S3's longest retention.
const maxRetainDays = 36500
