package preflight

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// checkCredentials resolves the credentials the S3 client will sign with. It
// reports only their source and expiry: never the keys, not even partly.
func checkCredentials(ctx context.Context, prov aws.CredentialsProvider) (Check, string) {
	c := Check{ID: CheckCredentials}
	if prov == nil {
		c.Status, c.Detail = StatusFail, "no credentials provider configured"
		return c, ""
	}
	creds, err := prov.Retrieve(ctx)
	if err != nil {
		c.Status, c.Detail = StatusFail, "credentials do not resolve: "+err.Error()
		c.Hint = "set AWS_PROFILE, the AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY pair, or attach an instance role"
		return c, ""
	}
	src := creds.Source
	if src == "" {
		src = "an unnamed provider"
	}
	c.Status, c.Detail = StatusPass, "resolved from "+src
	if creds.CanExpire {
		c.Detail += fmt.Sprintf(", expiring %s (refreshed by the SDK)", creds.Expires.UTC().Format(time.RFC3339))
	}
	return c, creds.Source
}

// customEndpoint returns the S3 client's BaseEndpoint when it points away
// from AWS (MinIO, a proxy): then the VPC path has nothing to prove. An
// AWS host set explicitly, such as an interface endpoint's
// bucket.vpce-….s3.<region>.vpce.amazonaws.com, is still judged.
func customEndpoint(o s3.Options) string {
	if o.BaseEndpoint == nil {
		return ""
	}
	u, err := url.Parse(*o.BaseEndpoint)
	if err != nil {
		return *o.BaseEndpoint
	}
	h := strings.ToLower(u.Hostname())
	for _, sfx := range []string{".amazonaws.com", ".amazonaws.com.cn", ".api.aws"} {
		if strings.HasSuffix(h, sfx) {
			return ""
		}
	}
	return *o.BaseEndpoint
}

// checkBucket sends the signed HeadBucket the backup's client would send and
// reads the bucket's region from x-amz-bucket-region, which S3 sets on
// 200, 301 and 403 alike.
func checkBucket(ctx context.Context, c *s3.Client, bucket string) (Check, string) {
	chk := Check{ID: CheckBucket}
	if bucket == "" {
		chk.Status, chk.Detail = StatusFail, "no bucket given"
		return chk, ""
	}
	out, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(bucket)})
	if err == nil {
		region := aws.ToString(out.BucketRegion)
		chk.Status, chk.Detail = StatusPass, fmt.Sprintf("HeadBucket %s: 200 OK", bucket)
		if region != "" {
			chk.Detail += ", region " + region
		}
		return chk, region
	}
	var re *smithyhttp.ResponseError
	if !errors.As(err, &re) || re.Response == nil {
		chk.Status, chk.Detail = StatusFail, "HeadBucket failed: "+err.Error()
		return chk, ""
	}
	region := re.Response.Header.Get("x-amz-bucket-region")
	chk.Status = StatusFail
	chk.Detail, chk.Hint = headBucketProblem(re.HTTPStatusCode(), bucket, region, c.Options().Region)
	if chk.Detail == "" {
		chk.Detail = "HeadBucket failed: " + err.Error()
	}
	return chk, region
}

func headBucketProblem(code int, bucket, bucketRegion, clientRegion string) (detail, hint string) {
	switch code {
	case http.StatusMovedPermanently:
		return fmt.Sprintf("bucket %s is in %s but the S3 client is set to %s (HeadBucket 301)", bucket, bucketRegion, clientRegion),
			"set the S3 region to " + bucketRegion
	case http.StatusForbidden:
		return fmt.Sprintf("HeadBucket %s: 403 Forbidden: the credentials may not s3:ListBucket it, or a bucket policy denies this caller", bucket),
			"grant s3:ListBucket on arn:aws:s3:::" + bucket + "; a bucket policy limited by aws:SourceVpce also denies calls that do not come through that endpoint"
	case http.StatusNotFound:
		return fmt.Sprintf("HeadBucket %s: 404: no such bucket", bucket), "check the bucket name"
	}
	return "", ""
}

// checkRegion: a gateway endpoint, and the S3 prefix list it routes, only
// cover buckets of the VPC's own region.
func checkRegion(bucketRegion, vpcRegion string) Check {
	c := Check{ID: CheckRegion}
	switch {
	case bucketRegion == "":
		c.Status, c.Detail = StatusUnknown, "S3 did not report the bucket's region"
	case bucketRegion == vpcRegion:
		c.Status, c.Detail = StatusPass, "bucket and VPC are both in "+vpcRegion
	default:
		c.Status = StatusFail
		c.Detail = fmt.Sprintf("bucket is in %s, the VPC in %s: a gateway endpoint only serves buckets of its own region, so this traffic leaves the VPC another way",
			bucketRegion, vpcRegion)
		c.Hint = "back up to a bucket in " + vpcRegion + " (replicate it onward if needed), or accept the inter-region path"
	}
	return c
}

// bucketHost asks the client's own endpoint resolver for the host it will
// connect to, fed the parameters the client itself binds for HeadBucket
// (path style, dual-stack, FIPS, accelerate, region, BaseEndpoint).
func bucketHost(ctx context.Context, o s3.Options, bucket string) (string, error) {
	res := o.EndpointResolverV2
	if res == nil {
		res = s3.NewDefaultEndpointResolverV2()
	}
	ep, err := res.ResolveEndpoint(ctx, endpointParams(o, bucket))
	if err != nil {
		return "", fmt.Errorf("resolve S3 endpoint for %s: %w", bucket, err)
	}
	return ep.URI.Hostname(), nil
}

// endpointParams mirrors what the s3 client does per operation: Options()
// returns the options before that step, so the deprecated UseDualstack flag
// and "fips-" pseudo-regions are folded in here as the client would.
func endpointParams(o s3.Options, bucket string) s3.EndpointParameters {
	dual := o.EndpointOptions.UseDualStackEndpoint == aws.DualStackEndpointStateEnabled ||
		//lint:ignore SA1019 the SDK still honours the deprecated flag, so preflight must read it too
		(o.EndpointOptions.UseDualStackEndpoint == aws.DualStackEndpointStateUnset && o.UseDualstack)
	fips := o.EndpointOptions.UseFIPSEndpoint == aws.FIPSEndpointStateEnabled
	region := o.Region
	if stripped := strings.NewReplacer("-fips-", "-", "fips-", "", "-fips", "").Replace(region); stripped != region {
		region, fips = stripped, true
	}
	p := s3.EndpointParameters{
		Bucket:                         aws.String(bucket),
		UseFIPS:                        aws.Bool(fips),
		UseDualStack:                   aws.Bool(dual),
		Endpoint:                       o.BaseEndpoint,
		ForcePathStyle:                 aws.Bool(o.UsePathStyle),
		Accelerate:                     aws.Bool(o.UseAccelerate),
		DisableMultiRegionAccessPoints: aws.Bool(o.DisableMultiRegionAccessPoints),
		UseArnRegion:                   aws.Bool(o.UseARNRegion),
		DisableS3ExpressSessionAuth:    o.DisableS3ExpressSessionAuth,
	}
	if region != "" {
		p.Region = aws.String(region)
	}
	return p
}

// lookupHost answers from the Resolve overrides first (like curl --resolve),
// then DNS. Mapped IPv4 addresses are unmapped and duplicates dropped.
func lookupHost(ctx context.Context, o Options, host string) ([]netip.Addr, string, error) {
	key := normalizeHost(host)
	for h, addrs := range o.Resolve {
		if normalizeHost(h) == key {
			return uniqueAddrs(addrs), "--resolve override", nil
		}
	}
	addrs, err := o.Resolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, "", fmt.Errorf("look up %s: %w", host, err)
	}
	return uniqueAddrs(addrs), "DNS", nil
}

func uniqueAddrs(in []netip.Addr) []netip.Addr {
	seen := map[netip.Addr]bool{}
	var out []netip.Addr
	for _, a := range in {
		a = a.Unmap()
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	return out
}

func joinAddrs(addrs []netip.Addr) string {
	s := make([]string, len(addrs))
	for i, a := range addrs {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}
