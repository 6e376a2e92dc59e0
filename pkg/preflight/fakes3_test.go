package preflight

import (
	"net/http"
	"strings"
)

// fakeS3 answers HEAD bucket the way S3 does: x-amz-bucket-region on 200,
// 301 (request signed for another region) and 403, nothing on 404.
type fakeS3 struct {
	buckets   map[string]string // bucket → region
	forbidden map[string]bool
}

func (f *fakeS3) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodHead {
		http.Error(w, "", http.StatusMethodNotAllowed)
		return
	}
	bucket := strings.SplitN(strings.TrimPrefix(r.URL.Path, "/"), "/", 2)[0] // path style
	if bucket == "" {
		bucket, _, _ = strings.Cut(r.Host, ".") // virtual-hosted style
	}
	region, ok := f.buckets[bucket]
	w.Header().Set("x-amz-request-id", "req-s3")
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	w.Header().Set("x-amz-bucket-region", region)
	switch {
	case f.forbidden[bucket]:
		w.WriteHeader(http.StatusForbidden)
	case signedRegion(r) != region:
		w.WriteHeader(http.StatusMovedPermanently)
	default:
		w.WriteHeader(http.StatusOK)
	}
}

// signedRegion reads the region from the SigV4 credential scope.
func signedRegion(r *http.Request) string {
	_, scope, _ := strings.Cut(r.Header.Get("Authorization"), "Credential=")
	parts := strings.Split(scope, "/")
	if len(parts) < 3 {
		return ""
	}
	return parts[2]
}
