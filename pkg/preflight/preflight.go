// Package preflight proves, before a byte moves, that this node's S3 traffic
// to the target bucket takes an S3 VPC endpoint (a gateway endpoint reached
// through the S3 prefix-list route, or an S3 interface endpoint), never a NAT
// gateway or an internet gateway.
//
// Run makes the checks in order (credentials, imds, bucket, permissions,
// encryption, object-lock, region, dns, route, endpoint, policy, cost) and returns a Report the caller keeps for the
// rest of the run.
//
// Verdict: any FAIL fails; otherwise any UNKNOWN leaves the verdict unknown.
// UNKNOWN is used when nothing could be proven either way: IMDS did not
// answer (not on EC2), EC2 refused a Describe call (UnauthorizedOperation: the
// check names the ec2: action to grant). Two routes that tie (equal prefix
// length, equal priority) with different targets FAIL: AWS picks one and
// does not say which, so part of the traffic may miss the endpoint. A missing
// permission is "unknown", not "fail", because the network may well be right; exit code 2 tells the operator to fix the preflight's
// own access rather than the VPC.
package preflight

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Defaults applied by Run to zero Options fields.
const (
	DefaultNATPricePerGB = 0.045 // USD per GB processed by a NAT gateway (us-east-1)
	DefaultTimeout       = 30 * time.Second
	DefaultIMDSTimeout   = 2 * time.Second
)

// Resolver looks up a host's addresses; *net.Resolver is one.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Options configure Run. Only Bucket and AWS are required.
type Options struct {
	Bucket string
	// AWS supplies credentials, region and endpoint settings for the clients
	// Run builds itself.
	AWS aws.Config
	// S3 is the very client the backup will use: HeadBucket goes through it
	// and its endpoint resolver names the host that is judged. Default
	// s3.NewFromConfig(AWS).
	S3 *s3.Client
	// EC2 reads the routing. Default ec2.NewFromConfig(AWS), which honours
	// AWS_ENDPOINT_URL_EC2. Calls are sent to the VPC's region from IMDS.
	EC2 *ec2.Client
	// IMDS reads the instance identity. Default imds.NewFromConfig(AWS) with
	// the IMDSv1 fallback disabled (honours AWS_EC2_METADATA_SERVICE_ENDPOINT
	// and AWS_EC2_METADATA_DISABLED). A client given here should disable the
	// fallback too: the SDK reads that setting from the client, not per call.
	IMDS *imds.Client
	// Objects, when given, is the backup's own client for the permissions
	// check, which probes a scratch object under Root (the node's key
	// prefix, ending in "/"). Without it the check is N/A.
	Objects Objects
	Root    string
	// Settings, when given, reads the bucket's default encryption and
	// Object Lock configuration (the encryption and object-lock checks).
	Settings Settings
	// KMS says the backup encrypts with SSE-KMS, with KMSKeyID (""
	// the account's aws/s3 key): the encryption check then proves the key
	// usable through Objects.
	KMS      bool
	KMSKeyID string
	// RequireObjectLock (--retain-days) makes a bucket without Object Lock,
	// or one whose configuration cannot be read, fail the object-lock check.
	RequireObjectLock bool
	// Resolve replaces DNS for the listed hosts (see ParseResolve).
	Resolve map[string][]netip.Addr
	// Resolver answers hosts not in Resolve. Default net.DefaultResolver.
	Resolver Resolver
	// Estimate is the expected upload size, for the cost check (nil: none
	// known). It is called once the route is known, after every request,
	// so that a backup's preflight need not wait for its snapshot's listing.
	Estimate func() int64
	// NATPricePerGB defaults to DefaultNATPricePerGB.
	NATPricePerGB float64
	// Timeout bounds the whole run; IMDSTimeout the identity lookup, which off
	// EC2 would otherwise retry for seconds.
	Timeout     time.Duration
	IMDSTimeout time.Duration
}

func (o Options) withDefaults() Options {
	if o.S3 == nil {
		o.S3 = s3.NewFromConfig(o.AWS)
	}
	if o.IMDS == nil {
		o.IMDS = imds.NewFromConfig(o.AWS, func(io *imds.Options) { io.EnableFallback = aws.FalseTernary })
	}
	if o.Resolver == nil {
		o.Resolver = net.DefaultResolver
	}
	if o.NATPricePerGB == 0 {
		o.NATPricePerGB = DefaultNATPricePerGB
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.IMDSTimeout <= 0 {
		o.IMDSTimeout = DefaultIMDSTimeout
	}
	return o
}

// Run makes every check and always returns a report; problems are checks,
// not errors.
func Run(ctx context.Context, o Options) *Report {
	o = o.withDefaults()
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	r := &runner{o: o, rep: &Report{Facts: Facts{Bucket: o.Bucket}}}
	s3o := o.S3.Options()
	c, src := checkCredentials(ctx, s3o.Credentials)
	r.add(c)
	r.rep.Facts.CredentialSource = src
	if ep := customEndpoint(s3o); ep != "" {
		r.runCustom(ctx, ep)
	} else {
		r.runAWS(ctx)
	}
	r.rep.Checks = r.checks
	r.rep.Verdict = verdictOf(r.rep.Checks)
	return r.rep
}

// runner makes checks and collects them in the report's order. Checks that
// do not depend on each other run at once, each branch on a runner of its
// own (see branch): a backup waits for the preflight, and on S3 every
// check is a round trip or three.
type runner struct {
	o      Options
	rep    *Report
	checks []Check
}

func (r *runner) add(c Check) { r.checks = append(r.checks, c) }

// branch is a runner for checks made beside r's: it collects its own
// checks, for join to append in their place, and shares r's report, whose
// facts each branch fills different fields of.
func (r *runner) branch() *runner { return &runner{o: r.o, rep: r.rep} }

// join appends the branches' checks, in the order given.
func (r *runner) join(bs ...*runner) {
	for _, b := range bs {
		r.checks = append(r.checks, b.checks...)
	}
}

func (r *runner) skip(why string, ids ...string) {
	for _, id := range ids {
		r.add(Check{ID: id, Status: StatusNA, Detail: why})
	}
}

// runCustom: behind a custom endpoint (MinIO, a proxy) there is no VPC
// endpoint to prove, but the bucket must still answer.
func (r *runner) runCustom(ctx context.Context, ep string) {
	why := "custom S3 endpoint " + ep + ": the VPC network path is not judged"
	r.rep.Facts.CustomEndpoint = ep
	r.skip(why, CheckIMDS)
	r.bucket(ctx)
	r.skip(why, CheckRegion, CheckDNS, CheckRoute, CheckEndpoint, CheckPolicy, CheckCost)
}

func (r *runner) runAWS(ctx context.Context) {
	// The instance's identity (IMDS), the bucket's checks and the bucket
	// host's addresses need nothing from each other; the route needs the
	// first and the last.
	var (
		id                   identity
		idErr                error
		bucketRegion, host   string
		addrs                []netip.Addr
		dnsOK                bool
		wg                   sync.WaitGroup
		imds, bucket, lookup = r.branch(), r.branch(), r.branch()
	)
	wg.Go(func() { id, idErr = imds.identity(ctx) })
	wg.Go(func() { bucketRegion = bucket.bucket(ctx) })
	wg.Go(func() { host, addrs, dnsOK = lookup.dns(ctx) })
	wg.Wait()
	r.join(imds, bucket)
	if idErr != nil {
		r.skip("needs the VPC's region from IMDS", CheckRegion)
	} else {
		r.add(checkRegion(bucketRegion, id.Region))
	}
	r.join(lookup)
	switch {
	case idErr != nil:
		r.skip("needs the instance identity from IMDS", CheckRoute, CheckEndpoint, CheckPolicy, CheckCost)
	case !dnsOK:
		r.skip("needs the bucket host's addresses (see dns)", CheckRoute, CheckEndpoint, CheckPolicy, CheckCost)
	default:
		r.network(ctx, id, host, addrs)
	}
}

// bucket checks that the bucket answers and, once it does, what a backup
// writes to it and its settings (the two at once), and returns its region.
func (r *runner) bucket(ctx context.Context) (region string) {
	// The permissions' probe and the bucket's settings start beside the
	// bucket's check rather than after it, a round trip sooner; what they
	// found is replaced by "needs the bucket" when the bucket does not
	// answer, so that a wrong bucket is reported as that, once.
	perms, settings := r.branch(), r.branch()
	var wg sync.WaitGroup
	wg.Go(func() { perms.permissions(ctx) })
	wg.Go(func() { settings.storage(ctx) })
	c, region := checkBucket(ctx, r.o.S3, r.o.Bucket)
	wg.Wait()
	r.add(c)
	r.rep.Facts.BucketRegion = region
	if c.Status != StatusPass {
		perms.replace("needs the bucket (see bucket)")
		settings.replace("needs the bucket (see bucket)")
	}
	r.join(perms, settings)
	return region
}

// replace makes each of r's checks not applicable, for why.
func (r *runner) replace(why string) {
	checks := r.checks
	r.checks = nil
	for _, c := range checks {
		r.skip(why, c.ID)
	}
}

// permissions probes what a backup writes.
func (r *runner) permissions(ctx context.Context) {
	if r.o.Objects == nil {
		r.skip("no object client given to probe with", CheckPermissions)
		return
	}
	r.add(checkPermissions(ctx, r.o.Objects, r.o.Bucket, r.o.Root))
}

func (r *runner) identity(ctx context.Context) (identity, error) {
	ictx, cancel := context.WithTimeout(ctx, r.o.IMDSTimeout)
	defer cancel()
	id, err := fetchIdentity(ictx, r.o.IMDS)
	if err != nil {
		r.add(Check{ID: CheckIMDS, Status: StatusUnknown,
			Detail: fmt.Sprintf("IMDSv2 gave no instance identity (deadline %s): not on EC2, IMDS disabled, or a container behind hop limit 1? The route checks need it. %v",
				r.o.IMDSTimeout, err),
			Hint: "run preflight on the EC2 node itself; from a container, allow IMDSv2 with --http-put-response-hop-limit 2"})
		return identity{}, err
	}
	f := &r.rep.Facts
	f.InstanceID, f.Region, f.SubnetID, f.VPCID = id.InstanceID, id.Region, id.SubnetID, id.VPCID
	detail := id.describe()
	if id.ENIs > 1 {
		detail += fmt.Sprintf("; %d network interfaces: judging eth0's subnet, which S3 traffic normally leaves by", id.ENIs)
	}
	r.add(Check{ID: CheckIMDS, Status: StatusPass, Detail: detail})
	return id, nil
}

func (r *runner) dns(ctx context.Context) (string, []netip.Addr, bool) {
	host, err := bucketHost(ctx, r.o.S3.Options(), r.o.Bucket)
	if err != nil {
		r.add(Check{ID: CheckDNS, Status: StatusFail, Detail: err.Error()})
		return "", nil, false
	}
	r.rep.Facts.Host = host
	addrs, src, err := lookupHost(ctx, r.o, host)
	if err == nil && len(addrs) == 0 {
		err = fmt.Errorf("%s has no addresses", host)
	}
	if err != nil {
		r.add(Check{ID: CheckDNS, Status: StatusFail, Detail: err.Error()})
		return host, nil, false
	}
	r.rep.Facts.Addrs = addrs
	r.add(Check{ID: CheckDNS, Status: StatusPass, Detail: fmt.Sprintf("%s → %s (%s)", host, joinAddrs(addrs), src)})
	return host, addrs, true
}

func (r *runner) network(ctx context.Context, id identity, host string, addrs []netip.Addr) {
	client := r.o.EC2
	if client == nil {
		client = ec2.NewFromConfig(r.o.AWS)
	}
	n, err := loadNetwork(ctx, newEC2API(client, id.Region), id)
	if err != nil {
		r.add(networkError(err))
		r.skip("needs the subnet's route table", CheckEndpoint, CheckPolicy, CheckCost)
		return
	}
	r.rep.Facts.RouteTableID = n.tableID
	paths := newJudge(n, id, host).paths(addrs)
	r.rep.Paths = paths
	r.add(routeCheck(n, id, paths))
	r.add(endpointCheck(host, paths))
	r.rep.Facts.EndpointIDs = endpointIDs(paths)
	r.add(policyCheck(n, id.Region, r.o.Bucket, paths))
	var estimate int64
	if r.o.Estimate != nil {
		estimate = r.o.Estimate()
	}
	r.add(costCheck(paths, estimate, r.o.NATPricePerGB))
}

// iamActions are every permission preflight uses (Resource "*").
const iamActions = "ec2:DescribeRouteTables, ec2:DescribeManagedPrefixLists, ec2:GetManagedPrefixListEntries, ec2:DescribeVpcEndpoints, ec2:DescribeNetworkInterfaces"

func networkError(err error) Check {
	c := Check{ID: CheckRoute, Status: StatusUnknown, Detail: "cannot read the subnet's routing: " + err.Error()}
	var mp *missingPermissionError
	if errors.As(err, &mp) {
		c.Detail = "missing IAM permission " + mp.action + " (EC2 answered UnauthorizedOperation), so the route cannot be judged"
		c.Hint = "grant " + mp.action + " to this node's role; preflight needs " + iamActions
	}
	return c
}
