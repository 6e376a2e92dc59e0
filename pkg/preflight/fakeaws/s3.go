package fakeaws

import (
	"net/http"
	"strings"
)

// S3 answers HEAD bucket the way S3 does: x-amz-bucket-region on 200, 301
// (request signed for another region) and 403, nothing on 404. It serves
// path-style and virtual-hosted requests. It is only for preflight's bucket
// check: s3bak's data path is tested against a real MinIO.
type S3 struct {
	Buckets   map[string]string // bucket → region
	Forbidden map[string]bool
}

func (f *S3) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodHead {
		http.Error(w, "", http.StatusMethodNotAllowed)
		return
	}
	bucket := strings.SplitN(strings.TrimPrefix(r.URL.Path, "/"), "/", 2)[0] // path style
	if bucket == "" {
		bucket, _, _ = strings.Cut(r.Host, ".") // virtual-hosted style
	}
	region, ok := f.Buckets[bucket]
	w.Header().Set("x-amz-request-id", "req-s3")
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	w.Header().Set("x-amz-bucket-region", region)
	switch {
	case f.Forbidden[bucket]:
		w.WriteHeader(http.StatusForbidden)
	case SignedRegion(r) != region:
		w.WriteHeader(http.StatusMovedPermanently)
	default:
		w.WriteHeader(http.StatusOK)
	}
}

// SignedRegion reads the region from a request's SigV4 credential scope.
func SignedRegion(r *http.Request) string {
	_, scope, _ := strings.Cut(r.Header.Get("Authorization"), "Credential=")
	parts := strings.Split(scope, "/")
	if len(parts) < 3 {
		return ""
	}
	return parts[2]
}
