package main

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/s3bak/s3bak/pkg/faultproxy"
	"github.com/s3bak/s3bak/pkg/miniotest"
)

// sent is one request as a recording proxy saw it.
type sent struct {
	method, path, query string
	header              http.Header
}

// recordingProxy records every request that passes it to target.
func recordingProxy(t *testing.T, target string) (*faultproxy.Proxy, func() []sent) {
	t.Helper()
	p, err := faultproxy.New(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	var mu sync.Mutex
	var reqs []sent
	p.Add(faultproxy.Rule{Match: func(r *http.Request) bool {
		mu.Lock()
		reqs = append(reqs, sent{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone()})
		mu.Unlock()
		return false
	}})
	return p, func() []sent {
		mu.Lock()
		defer mu.Unlock()
		return append([]sent(nil), reqs...)
	}
}

// creates tells whether a request creates an object (a PUT that is not a
// part, or the POST that starts a multipart upload).
func (s sent) creates() bool {
	q := s.query
	return (s.method == http.MethodPut && !strings.Contains(q, "partNumber=")) ||
		(s.method == http.MethodPost && strings.HasPrefix(q, "uploads"))
}

// rawClient is an SDK client of server, to see what s3bak's client hides.
func rawClient(server *miniotest.Server) *s3.Client {
	return s3.New(s3.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(server.URL), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(miniotest.AccessKey, miniotest.SecretKey, ""),
		HTTPClient:  server.HTTPClient(),
	})
}

// TestEncryptedBackupAndRestore backs up and restores a node with --sse
// aws:kms and with --sse AES256 on a MinIO whose KMS has a static key:
// every request that creates an object (data, packs, the multipart
// upload of a large file, manifest, index, pending marker, lock) asks for
// the encryption, every object left under the node's prefix answers a
// HEAD as encrypted, and the restore reads them back without a flag.
func TestEncryptedBackupAndRestore(t *testing.T) {
	t.Parallel()
	key := make([]byte, 32)
	rand.Read(key)
	server, err := miniotest.Start(t.TempDir(), "MINIO_KMS_SECRET_KEY=s3bak-test:"+base64.StdEncoding.EncodeToString(key))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(server.Stop)
	if err := server.MakeBucket(context.Background(), "enc"); err != nil {
		t.Fatal(err)
	}
	n := buildNode(t)
	for _, tc := range []struct {
		name, want string
		flags      []string
	}{
		{"kms", "aws:kms", []string{"--sse", "aws:kms", "--sse-kms-key-id", "s3bak-test"}},
		{"s3", "AES256", []string{"--sse", "AES256"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, requests := recordingProxy(t, server.URL)
			node := []string{"--bucket", "enc", "--prefix", tc.name, "--cluster", "prod", "--node", "cass-1", "--endpoint-url", p.URL}
			args := append(append([]string{"backup", "--tag", n.tag, "--chunk-size", "1MiB", "--part-size", "5MiB"}, node...), tc.flags...)
			for _, d := range n.dataDirs {
				args = append(args, "--data-dir", d)
			}
			mustRun(t, args...)

			kinds := map[string]int{}
			for _, r := range requests() {
				if !r.creates() {
					continue
				}
				if got := r.header.Get("X-Amz-Server-Side-Encryption"); got != tc.want {
					t.Errorf("%s %s?%s: x-amz-server-side-encryption %q, want %q", r.method, r.path, r.query, got, tc.want)
				}
				if tc.want == "aws:kms" {
					if r.header.Get("X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id") != "s3bak-test" ||
						r.header.Get("X-Amz-Server-Side-Encryption-Bucket-Key-Enabled") != "true" {
						t.Errorf("%s %s: KMS key %q, bucket key %q", r.method, r.path,
							r.header.Get("X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id"), r.header.Get("X-Amz-Server-Side-Encryption-Bucket-Key-Enabled"))
					}
				}
				for _, k := range []string{"/data/packs/", "/data/", "/backups/", "/pending/", "/backups.json.zst", "/lock.json"} {
					if strings.Contains(r.path, k) {
						kinds[k]++
						break
					}
				}
				if r.method == http.MethodPost {
					kinds["multipart"]++
				}
			}
			for _, k := range []string{"/data/packs/", "/data/", "/backups/", "/pending/", "/backups.json.zst", "/lock.json", "multipart"} {
				if kinds[k] == 0 {
					t.Errorf("no encrypted write of %s seen: %v", k, kinds)
				}
			}

			// What is left in the bucket is encrypted, as MinIO says.
			raw := rawClient(server)
			ctx := context.Background()
			objects := 0
			pg := s3.NewListObjectsV2Paginator(raw, &s3.ListObjectsV2Input{Bucket: aws.String("enc"), Prefix: aws.String(tc.name + "/")})
			for pg.HasMorePages() {
				page, err := pg.NextPage(ctx)
				if err != nil {
					t.Fatal(err)
				}
				for _, o := range page.Contents {
					objects++
					h, err := raw.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("enc"), Key: o.Key})
					if err != nil {
						t.Fatal(err)
					}
					if string(h.ServerSideEncryption) != tc.want {
						t.Errorf("%s: HEAD says encryption %q, want %q", aws.ToString(o.Key), h.ServerSideEncryption, tc.want)
					}
				}
			}
			if objects < 4 {
				t.Fatalf("only %d objects under %s/", objects, tc.name)
			}

			// Reads need no flag.
			mustRun(t, append([]string{"verify", "--deep"}, node...)...)
			target := filepath.Join(t.TempDir(), "restore")
			mustRun(t, append([]string{"restore", "--target", target}, node...)...)
			compareTree(t, target, n.want)
		})
	}
}

// TestStorageClassIsForDataOnly backs up with --storage-class through a
// recording proxy: data objects, packs and the large file's multipart
// upload ask for the class; manifest, index, marker and lock do not.
// MinIO stores only STANDARD and REDUCED_REDUNDANCY, so the class here is
// REDUCED_REDUNDANCY; the transfer package checks the others' headers.
func TestStorageClassIsForDataOnly(t *testing.T) {
	t.Parallel()
	n := buildNode(t)
	bucket := newBucket(t)
	p, requests := recordingProxy(t, minio.URL)
	mustRun(t, append(n.backupArgs(bucket), "--endpoint-url", p.URL, "--storage-class", "reduced_redundancy")...)
	data, other := 0, 0
	for _, r := range requests() {
		if !r.creates() {
			continue
		}
		class := r.header.Get("X-Amz-Storage-Class")
		if strings.Contains(r.path, "/data/") {
			data++
			if class != "REDUCED_REDUNDANCY" {
				t.Errorf("%s %s?%s: storage class %q, want REDUCED_REDUNDANCY", r.method, r.path, r.query, class)
			}
		} else {
			other++
			if class != "" {
				t.Errorf("%s %s: storage class %q, want none (STANDARD)", r.method, r.path, class)
			}
		}
	}
	if data == 0 || other < 4 {
		t.Fatalf("saw %d data writes and %d others", data, other)
	}
	target := filepath.Join(t.TempDir(), "restore")
	mustRun(t, "restore", "--bucket", bucket, "--cluster", "prod", "--node", "cass-1", "--target", target)
	compareTree(t, target, n.want)
}

func TestStorageAndEncryptionFlagsRefused(t *testing.T) {
	t.Parallel()
	n := buildNode(t)
	bucket := newBucket(t)
	keyFile := filepath.Join(t.TempDir(), "key")
	writeFile(t, keyFile, []byte("too short"))
	for _, tc := range []struct {
		flags []string
		msg   string
	}{
		{[]string{"--storage-class", "GLACIER"}, "must be restored"},
		{[]string{"--storage-class", "DEEP_ARCHIVE"}, "GLACIER_IR"},
		{[]string{"--storage-class", "COLD"}, "want one of"},
		{[]string{"--sse", "rot13"}, "want aws:kms or AES256"},
		{[]string{"--sse", "AES256", "--sse-kms-key-id", "k"}, "needs --sse aws:kms"},
		{[]string{"--sse-c-key-file", keyFile}, "32 bytes"},
	} {
		r := s3bak(t, append(n.backupArgs(bucket), tc.flags...)...)
		wantExit(t, r, exitUsage, tc.msg)
		if strings.Contains(r.stderr, "too short") {
			t.Fatalf("the key file's contents are in the message: %s", r.stderr)
		}
	}
	if keys := listKeys(t, bucket, ""); len(keys) != 0 {
		t.Fatalf("a refused run wrote %v", keys)
	}
}

// TestSSECRoundTripOverTLS backs up with --sse-c-key-file to a MinIO over
// TLS (it refuses customer keys over plain HTTP): every object under the
// node's prefix is encrypted with the key (a HEAD with it says so, one
// without it is refused), verify --deep and restore read them with the key,
// and a restore without it fails without naming it.
func TestSSECRoundTripOverTLS(t *testing.T) {
	server, ca, err := miniotest.StartTLS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(server.Stop)
	if err := server.MakeBucket(context.Background(), "ssec"); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_CA_BUNDLE", ca)
	key := make([]byte, 32)
	rand.Read(key)
	b64 := base64.StdEncoding.EncodeToString(key)
	keyFile := filepath.Join(t.TempDir(), "sse-c.key")
	writeFile(t, keyFile, []byte(b64+"\n"))
	n := buildNode(t)
	node := []string{"--bucket", "ssec", "--cluster", "prod", "--node", "cass-1", "--endpoint-url", server.URL}
	withKey := append(append([]string(nil), node...), "--sse-c-key-file", keyFile)
	args := append([]string{"backup", "--tag", n.tag, "--chunk-size", "1MiB", "--part-size", "5MiB"}, withKey...)
	for _, d := range n.dataDirs {
		args = append(args, "--data-dir", d)
	}
	r := mustRun(t, args...)
	if strings.Contains(r.stdout+r.stderr, b64) {
		t.Fatal("the backup's output shows the key")
	}

	raw := rawClient(server)
	ctx := context.Background()
	sum := md5.Sum(key)
	objects := 0
	pg := s3.NewListObjectsV2Paginator(raw, &s3.ListObjectsV2Input{Bucket: aws.String("ssec")})
	for pg.HasMorePages() {
		page, err := pg.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			objects++
			h, err := raw.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("ssec"), Key: o.Key,
				SSECustomerAlgorithm: aws.String("AES256"), SSECustomerKey: aws.String(b64),
				SSECustomerKeyMD5: aws.String(base64.StdEncoding.EncodeToString(sum[:]))})
			if err != nil {
				t.Fatalf("%s: HEAD with the key: %v", aws.ToString(o.Key), err)
			}
			if aws.ToString(h.SSECustomerAlgorithm) != "AES256" {
				t.Errorf("%s: HEAD says customer algorithm %q", aws.ToString(o.Key), aws.ToString(h.SSECustomerAlgorithm))
			}
			if _, err := raw.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("ssec"), Key: o.Key}); err == nil {
				t.Errorf("%s: HEAD without the key answered: not SSE-C", aws.ToString(o.Key))
			}
		}
	}
	if objects < 4 {
		t.Fatalf("only %d objects", objects)
	}

	mustRun(t, append([]string{"verify", "--deep"}, withKey...)...)
	target := filepath.Join(t.TempDir(), "restore")
	mustRun(t, append([]string{"restore", "--target", target}, withKey...)...)
	compareTree(t, target, n.want)

	r = s3bak(t, append([]string{"restore", "--target", filepath.Join(t.TempDir(), "nokey")}, node...)...)
	if r.code == 0 {
		t.Fatal("a restore without the key succeeded")
	}
	if !strings.Contains(r.stderr, "--sse-c-key-file") {
		t.Errorf("a restore without the key does not say to give it: %s", r.stderr)
	}
	if strings.Contains(r.stdout+r.stderr, b64) {
		t.Fatal("an error shows the key")
	}
}
