package preflight

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/smithy-go"

	"github.com/s3bak/s3bak/pkg/transfer"
)

// fakeObjects is a bucket in memory that refuses the actions in deny the way
// transfer.Client reports S3's AccessDenied (the service error in the chain).
type fakeObjects struct {
	mu      sync.Mutex
	objects map[string][]byte
	deny    map[string]bool // "put", "get", "delete", "list"
	calls   []string
}

func denied(op, key string) error {
	return fmt.Errorf("%s s3://b/%s: access denied: %w", op, key, &smithy.GenericAPIError{Code: "AccessDenied", Message: "Access Denied."})
}

func (f *fakeObjects) call(op string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, op)
	return f.deny[op]
}

func (f *fakeObjects) Put(_ context.Context, key string, b []byte, _ string, cond transfer.Cond) (string, error) {
	if f.call("put") {
		return "", denied("PutObject", key)
	}
	if !cond.IfAbsent {
		return "", fmt.Errorf("probe put without If-None-Match")
	}
	f.objects[key] = b
	return `"etag"`, nil
}

func (f *fakeObjects) GetSmall(_ context.Context, key string, _ int64) ([]byte, string, error) {
	if f.call("get") {
		return nil, "", denied("GetObject", key)
	}
	b, ok := f.objects[key]
	if !ok {
		return nil, "", fmt.Errorf("GetObject %s: %w", key, transfer.ErrNotFound)
	}
	return b, `"etag"`, nil
}

func (f *fakeObjects) Delete(_ context.Context, key string) error {
	if f.call("delete") {
		return denied("DeleteObject", key)
	}
	delete(f.objects, key)
	return nil
}

func (f *fakeObjects) ListUploads(_ context.Context, prefix string) iter.Seq2[transfer.Upload, error] {
	return func(yield func(transfer.Upload, error) bool) {
		if f.call("list") {
			yield(transfer.Upload{}, denied("ListMultipartUploads", prefix))
		}
	}
}

func TestPermissionsProbe(t *testing.T) {
	const root = "pre/prod/n1/"
	for _, tt := range []struct {
		name   string
		deny   []string
		status Status
		want   []string
		not    []string
		left   bool // the probe object stays (DeleteObject denied)
	}{
		{name: "all allowed", status: StatusPass, want: []string{"probe deleted", "s3://b/" + root + ProbePrefix}},
		{name: "no DeleteObject", deny: []string{"delete"}, status: StatusFail, left: true,
			want: []string{"DeleteObject denied: missing s3:DeleteObject", "grant s3:DeleteObject on arn:aws:s3:::b/" + root + "*", "left there"},
			not:  []string{"s3:PutObject", "s3:ListBucketMultipartUploads"}},
		{name: "no ListBucketMultipartUploads", deny: []string{"list"}, status: StatusFail,
			want: []string{"ListMultipartUploads denied: missing s3:ListBucketMultipartUploads"},
			not:  []string{"s3:DeleteObject", "s3:PutObject", "left there"}},
		{name: "read-only role", deny: []string{"put", "delete", "list"}, status: StatusFail,
			want: []string{"missing s3:PutObject", "missing s3:DeleteObject", "missing s3:ListBucketMultipartUploads",
				"grant s3:PutObject, s3:DeleteObject on arn:aws:s3:::b/" + root + "* and s3:ListBucketMultipartUploads on arn:aws:s3:::b"},
			not: []string{"s3:GetObject", "left there"}},
		{name: "no GetObject", deny: []string{"get"}, status: StatusFail, want: []string{"GetObject denied: missing s3:GetObject"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeObjects{objects: map[string][]byte{}, deny: map[string]bool{}}
			for _, d := range tt.deny {
				f.deny[d] = true
			}
			c := checkPermissions(context.Background(), f, "b", root)
			if c.ID != CheckPermissions || c.Status != tt.status {
				t.Errorf("check = %+v, want %s", c, tt.status)
			}
			text := c.Detail + " | " + c.Hint
			for _, w := range tt.want {
				if !strings.Contains(text, w) {
					t.Errorf("%q does not mention %q", text, w)
				}
			}
			for _, w := range tt.not {
				if strings.Contains(text, w) {
					t.Errorf("%q mentions %q", text, w)
				}
			}
			if strings.Contains(text, "check the credentials") {
				t.Errorf("%q: names no action", text)
			}
			if len(f.objects) > 0 != tt.left {
				t.Errorf("objects left: %v, want left=%v", f.objects, tt.left)
			}
			for k := range f.objects {
				if !strings.HasPrefix(k, root+ProbePrefix) {
					t.Errorf("probe key %q is not under the node's prefix", k)
				}
			}
			// The listing runs beside the others, which follow one
			// another on the probe object.
			var onKey []string
			lists := 0
			for _, c := range f.calls {
				if c == "list" {
					lists++
				} else {
					onKey = append(onKey, c)
				}
			}
			if got := strings.Join(onKey, ","); got != "put,get,delete" || lists != 1 {
				t.Errorf("calls %s: want put, get and delete in that order, and one list", strings.Join(f.calls, ","))
			}
		})
	}
}

// TestPreflightEC2PolicyDocumented: docs/iam/preflight-ec2.json, which the
// README gives for the node role, grants exactly the ec2 actions preflight
// calls (iamActions, which its errors name).
func TestPreflightEC2PolicyDocumented(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "iam", "preflight-ec2.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Version   string
		Statement []struct {
			Sid, Effect string
			Action      []string
			Resource    string
		}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil || len(doc.Statement) != 1 {
		t.Fatalf("%v: %s", err, b)
	}
	st := doc.Statement[0]
	want := strings.Split(iamActions, ", ")
	slices.Sort(want)
	got := slices.Sorted(slices.Values(st.Action))
	if doc.Version != "2012-10-17" || st.Effect != "Allow" || st.Resource != "*" || !slices.Equal(got, want) {
		t.Errorf("preflight-ec2.json grants %v (%s on %s), preflight calls %v", got, st.Effect, st.Resource, want)
	}
}
