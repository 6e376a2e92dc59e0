package preflight

import (
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/s3bak/s3bak/pkg/preflight/fakeaws"
)

// Scenarios about the route table, prefix lists and endpoints.

func TestSpecificCIDRShadowsPrefixList(t *testing.T) {
	e := newEnv(t)
	e.ec2.Tables[0].Routes = append(e.ec2.Tables[0].Routes, fakeaws.Route("52.216.0.0/16", "natGatewayId", "nat-0123"))
	rep := e.run(t)
	wantVerdict(t, rep, VerdictFail, 1)
	want(t, rep, CheckRoute, StatusFail, "52.216.5.5: route 52.216.0.0/16 → NAT gateway nat-0123 is more specific than pl-63a5400a",
		"shadows", "54.231.1.1: via pl-63a5400a")
	want(t, rep, CheckEndpoint, StatusFail, "52.216.5.5: would traverse NAT gateway nat-0123", "54.231.1.1: S3 gateway endpoint vpce-0s3")
	if p := pathFor(t, rep, "54.231.1.1"); p.Status != StatusPass {
		t.Errorf("54.231.1.1 path = %+v, want PASS", p)
	}
	if p := pathFor(t, rep, "52.216.5.5"); p.Status != StatusFail || p.Route != "52.216.0.0/16" || p.Kind != kindNAT {
		t.Errorf("52.216.5.5 path = %+v", p)
	}
}

func TestStaticRouteWinsTieWithPrefixListEntry(t *testing.T) {
	e := newEnv(t)
	e.ec2.Tables[0].Routes = append(e.ec2.Tables[0].Routes, fakeaws.Route("52.216.0.0/15", "gatewayId", "igw-0pub"))
	rep := e.run(t)
	wantVerdict(t, rep, VerdictFail, 1)
	want(t, rep, CheckEndpoint, StatusFail, "52.216.5.5: would traverse internet gateway igw-0pub")
}

func TestPropagatedRouteLosesTieToPrefixList(t *testing.T) {
	e := newEnv(t)
	e.ec2.Tables[0].Routes = append(e.ec2.Tables[0].Routes,
		fakeaws.RouteFull("52.216.0.0/15", "gatewayId", "vgw-0onprem", "active", "EnableVgwRoutePropagation"))
	rep := e.run(t)
	wantVerdict(t, rep, VerdictPass, 0)
}

func TestInterfaceEndpoint(t *testing.T) {
	e := newEnv(t)
	e.ec2.Tables[0].Routes = e.ec2.Tables[0].Routes[:2] // no gateway endpoint route
	e.ec2.Endpoints = []fakeaws.Endpoint{{ID: "vpce-0s3if", Type: "Interface", Service: "com.amazonaws.us-east-1.s3",
		State: "available", Policy: defaultPolicy, ENIs: []string{"eni-0vpce1", "eni-0vpce2"}}}
	e.ec2.ENIs = []fakeaws.ENI{
		{ID: "eni-0vpce1", IPv4: []string{"10.0.1.20"}},
		{ID: "eni-0vpce2", IPv4: []string{"10.0.2.20"}},
		{ID: "eni-0other", IPv4: []string{"10.0.1.99"}},
	}

	t.Run("private DNS answers the ENI addresses", func(t *testing.T) {
		e.resolve[testHost] = addrs("10.0.1.20", "10.0.2.20")
		rep := e.run(t)
		wantVerdict(t, rep, VerdictPass, 0)
		want(t, rep, CheckRoute, StatusPass, "local")
		want(t, rep, CheckEndpoint, StatusPass, "S3 interface endpoint vpce-0s3if")
		want(t, rep, CheckPolicy, StatusWarn, "vpce-0s3if")
		want(t, rep, CheckCost, StatusPass, "interface endpoint")
		if p := pathFor(t, rep, "10.0.2.20"); p.Kind != kindInterfaceEndpoint {
			t.Errorf("path = %+v", p)
		}
	})
	t.Run("endpoint-specific DNS name as BaseEndpoint", func(t *testing.T) {
		host := "my-bucket.bucket.vpce-0s3if-abcd1234.s3.us-east-1.vpce.amazonaws.com"
		e.resolve[host] = addrs("10.0.1.20")
		rep := e.run(t, func(o *Options) {
			o.S3 = e.s3Client(func(so *s3.Options) {
				so.BaseEndpoint = aws.String("https://bucket.vpce-0s3if-abcd1234.s3.us-east-1.vpce.amazonaws.com")
			})
		})
		wantVerdict(t, rep, VerdictPass, 0)
		want(t, rep, CheckDNS, StatusPass, host)
	})
	t.Run("an in-VPC address that is no S3 endpoint", func(t *testing.T) {
		e.resolve[testHost] = addrs("10.0.1.99")
		rep := e.run(t)
		wantVerdict(t, rep, VerdictFail, 1)
		want(t, rep, CheckEndpoint, StatusFail, "belongs to no S3 interface endpoint")
	})
}

func TestEndpointNotAssociated(t *testing.T) {
	t.Run("no prefix-list route", func(t *testing.T) {
		e := newEnv(t)
		e.ec2.Tables[0].Routes = e.ec2.Tables[0].Routes[:2]
		e.ec2.Endpoints[0].RouteTables = []string{"rtb-0other"}
		rep := e.run(t)
		wantVerdict(t, rep, VerdictFail, 1)
		want(t, rep, CheckRoute, StatusFail, "vpce-0s3 is not associated with rtb-0priv",
			"modify-vpc-endpoint --vpc-endpoint-id vpce-0s3 --add-route-table-ids rtb-0priv")
		want(t, rep, CheckEndpoint, StatusFail, "would traverse NAT gateway nat-0123")
	})
	t.Run("route present but endpoint does not list the table", func(t *testing.T) {
		e := newEnv(t)
		e.ec2.Endpoints[0].RouteTables = []string{"rtb-0other"}
		rep := e.run(t)
		wantVerdict(t, rep, VerdictFail, 1)
		want(t, rep, CheckEndpoint, StatusFail, "S3 gateway endpoint vpce-0s3 is not associated with rtb-0priv")
	})
}

func TestBlackholeRoute(t *testing.T) {
	e := newEnv(t)
	e.ec2.Tables[0].Routes[2] = fakeaws.RouteFull("pl-63a5400a", "gatewayId", "vpce-0gone", "blackhole", "CreateRoute")
	rep := e.run(t)
	wantVerdict(t, rep, VerdictFail, 1)
	want(t, rep, CheckRoute, StatusFail, "blackhole")
	want(t, rep, CheckEndpoint, StatusFail, "dropped")
}

func TestGatewayLoadBalancerEndpointIsNotS3(t *testing.T) {
	e := newEnv(t)
	e.ec2.Tables[0].Routes[2] = fakeaws.Route("pl-63a5400a", "gatewayId", "vpce-0gwlb")
	e.ec2.Endpoints = append(e.ec2.Endpoints, fakeaws.Endpoint{ID: "vpce-0gwlb", Type: "GatewayLoadBalancer",
		Service: "com.amazonaws.vpce.us-east-1.vpce-svc-0fw", State: "available"})
	rep := e.run(t)
	wantVerdict(t, rep, VerdictFail, 1)
	want(t, rep, CheckEndpoint, StatusFail, "GatewayLoadBalancer endpoint vpce-0gwlb, not an S3 gateway endpoint")
}

func TestPendingEndpoint(t *testing.T) {
	e := newEnv(t)
	e.ec2.Endpoints[0].State = "pending"
	rep := e.run(t)
	wantVerdict(t, rep, VerdictFail, 1)
	want(t, rep, CheckEndpoint, StatusFail, "vpce-0s3 is pending, not available")
}

// Two routes of equal prefix length and equal priority with different
// targets: AWS picks one and does not say which, so part of the traffic may
// miss the endpoint. That is a FAIL naming both routes, whichever comes first.
func TestTiedRoutes(t *testing.T) {
	corp := fakeaws.PrefixList{ID: "pl-0corp", Name: "corp-egress", Family: "IPv4", CIDRs: []string{"52.216.0.0/15", "192.0.2.0/24"}}
	s3route := fakeaws.Route("pl-63a5400a", "gatewayId", "vpce-0s3")
	for _, tt := range []struct {
		name    string
		lists   []fakeaws.PrefixList
		routes  func(routes []string) []string
		verdict Verdict
		code    int
		route   []string // the route check's status and what its detail names
		status  Status
	}{
		{
			name:  "two prefix lists, equal entry, other target",
			lists: []fakeaws.PrefixList{corp},
			routes: func(rs []string) []string {
				return append(rs, fakeaws.Route("pl-0corp", "transitGatewayId", "tgw-0corp"))
			},
			verdict: VerdictFail, code: 1, status: StatusFail,
			route: []string{"52.216.5.5: ambiguous", "pl-63a5400a (com.amazonaws.us-east-1.s3, entry 52.216.0.0/15) → vpce-0s3",
				"pl-0corp (corp-egress, entry 52.216.0.0/15) → tgw-0corp", "/15", "miss the endpoint"},
		},
		{
			name:  "the other list's route listed first",
			lists: []fakeaws.PrefixList{corp},
			routes: func(rs []string) []string {
				return append(slices.DeleteFunc(slices.Clone(rs), func(r string) bool { return r == s3route }),
					fakeaws.Route("pl-0corp", "natGatewayId", "nat-0123"), s3route)
			},
			verdict: VerdictFail, code: 1, status: StatusFail,
			route: []string{"52.216.5.5: ambiguous", "pl-0corp (corp-egress, entry 52.216.0.0/15) → nat-0123",
				"pl-63a5400a (com.amazonaws.us-east-1.s3, entry 52.216.0.0/15) → vpce-0s3"},
		},
		{
			name:    "equal length entries of two lists, not the same CIDR text",
			lists:   []fakeaws.PrefixList{{ID: "pl-0wide", Name: "wide", Family: "IPv4", CIDRs: []string{"52.216.1.0/15"}}},
			routes:  func(rs []string) []string { return append(rs, fakeaws.Route("pl-0wide", "gatewayId", "igw-0pub")) },
			verdict: VerdictFail, code: 1, status: StatusFail,
			route: []string{"52.216.5.5: ambiguous", "pl-0wide (wide, entry 52.216.0.0/15) → igw-0pub", "vpce-0s3"},
		},
		{
			name:    "two lists, equal entry, same target: no ambiguity",
			lists:   []fakeaws.PrefixList{corp},
			routes:  func(rs []string) []string { return append(rs, fakeaws.Route("pl-0corp", "gatewayId", "vpce-0s3")) },
			verdict: VerdictPass, code: 0, status: StatusPass,
			route: []string{"52.216.5.5: via pl-63a5400a"},
		},
		{
			name:    "a longer entry is no tie",
			lists:   []fakeaws.PrefixList{{ID: "pl-0narrow", Name: "narrow", Family: "IPv4", CIDRs: []string{"52.216.5.0/24"}}},
			routes:  func(rs []string) []string { return append(rs, fakeaws.Route("pl-0narrow", "natGatewayId", "nat-0123")) },
			verdict: VerdictFail, code: 1, status: StatusFail,
			route: []string{"52.216.5.5: route pl-0narrow (narrow, entry 52.216.5.0/24) → NAT gateway nat-0123 is more specific"},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.ec2.Lists = append(e.ec2.Lists, tt.lists...)
			e.ec2.Tables[0].Routes = tt.routes(e.ec2.Tables[0].Routes)
			rep := e.run(t)
			wantVerdict(t, rep, tt.verdict, tt.code)
			want(t, rep, CheckRoute, tt.status, tt.route...)
			if p := pathFor(t, rep, "54.231.1.1"); p.Status != StatusPass {
				t.Errorf("54.231.1.1 = %+v, want PASS (only 52.216.0.0/15 overlaps)", p)
			}
			if tt.verdict == VerdictFail && strings.Contains(tt.route[0], "ambiguous") {
				if p := pathFor(t, rep, "52.216.5.5"); p.Status != StatusFail || !strings.Contains(p.Detail, "part of the traffic may take") {
					t.Errorf("52.216.5.5 = %+v, want FAIL naming both targets", p)
				}
			}
		})
	}
}

func TestMainRouteTableFallback(t *testing.T) {
	e := newEnv(t)
	e.ec2.Tables = []fakeaws.Table{{ID: "rtb-0main", VPC: "vpc-0abc", Main: true, Routes: []string{
		fakeaws.Route("10.0.0.0/16", "gatewayId", "local"),
		fakeaws.Route("0.0.0.0/0", "natGatewayId", "nat-0123"),
		fakeaws.Route("pl-63a5400a", "gatewayId", "vpce-0s3"),
	}}}
	e.ec2.Endpoints[0].RouteTables = []string{"rtb-0main"}
	rep := e.run(t)
	wantVerdict(t, rep, VerdictPass, 0)
	want(t, rep, CheckRoute, StatusPass, "rtb-0main (main route table of vpc-0abc; subnet-0priv has no explicit association)")
	if n := e.ec2.Called("DescribeRouteTables"); n != 2 {
		t.Errorf("DescribeRouteTables called %d times, want 2 (subnet, then main)", n)
	}
}

func TestPaginationUsesEveryPage(t *testing.T) {
	e := newEnv(t)
	e.ec2.Page = 1
	e.ec2.Endpoints = append([]fakeaws.Endpoint{{ID: "vpce-0ddb", Type: "Gateway", Service: "com.amazonaws.us-east-1.dynamodb",
		State: "available", RouteTables: []string{"rtb-0priv"}}}, e.ec2.Endpoints...)
	e.resolve[testHost] = addrs("3.5.1.1") // in the list's last entry, on its third page
	rep := e.run(t)
	wantVerdict(t, rep, VerdictPass, 0)
	want(t, rep, CheckRoute, StatusPass, "3 CIDRs", "entry 3.5.0.0/19")
	if n := e.ec2.Called("GetManagedPrefixListEntries"); n != 3 {
		t.Errorf("GetManagedPrefixListEntries called %d times, want 3 pages", n)
	}
	if n := e.ec2.Called("DescribeVpcEndpoints"); n != 2 {
		t.Errorf("DescribeVpcEndpoints called %d times, want 2 pages", n)
	}
}

func TestIPv6(t *testing.T) {
	dualHost := "my-bucket.s3.dualstack.us-east-1.amazonaws.com"
	setup := func(t *testing.T, nodeHasIPv6 bool) *env {
		e := newEnv(t)
		if nodeHasIPv6 {
			fakeaws.AddIPv6(e.imds.Meta)
		}
		e.ec2.Tables[0].Routes = append(e.ec2.Tables[0].Routes,
			fakeaws.Route("2600:1f18:aaaa:bb00::/56", "gatewayId", "local"),
			fakeaws.Route("::/0", "egressOnlyInternetGatewayId", "eigw-0v6"))
		e.resolve[dualHost] = addrs("52.216.5.5", "2600:1fa0:80cc:1::1")
		return e
	}
	dual := func(e *env) func(*Options) {
		//lint:ignore SA1019 the SDK still honours the deprecated flag, so preflight must read it too
		return func(o *Options) { o.S3 = e.s3Client(func(so *s3.Options) { so.UseDualstack = true }) }
	}
	t.Run("AAAA via egress-only IGW fails, A via endpoint passes", func(t *testing.T) {
		e := setup(t, true)
		rep := e.run(t, dual(e))
		wantVerdict(t, rep, VerdictFail, 1)
		want(t, rep, CheckDNS, StatusPass, dualHost)
		want(t, rep, CheckEndpoint, StatusFail, "2600:1fa0:80cc:1::1: would traverse egress-only internet gateway eigw-0v6",
			"52.216.5.5: S3 gateway endpoint vpce-0s3")
		if p := pathFor(t, rep, "2600:1fa0:80cc:1::1"); p.Route != "::/0" {
			t.Errorf("IPv6 address judged by %q, want ::/0", p.Route)
		}
	})
	t.Run("node without IPv6 never uses AAAA", func(t *testing.T) {
		e := setup(t, false)
		rep := e.run(t, dual(e))
		wantVerdict(t, rep, VerdictPass, 0)
		if p := pathFor(t, rep, "2600:1fa0:80cc:1::1"); p.Status != StatusNA {
			t.Errorf("IPv6 path = %+v, want N/A", p)
		}
	})
	t.Run("IPv6 address with no IPv6 route", func(t *testing.T) {
		e := setup(t, true)
		e.ec2.Tables[0].Routes = e.ec2.Tables[0].Routes[:3] // 0.0.0.0/0 must not cover it
		rep := e.run(t, dual(e))
		wantVerdict(t, rep, VerdictFail, 1)
		want(t, rep, CheckRoute, StatusFail, "2600:1fa0:80cc:1::1: no route in rtb-0priv covers it")
	})
}

func TestAccelerateHostOutsidePrefixList(t *testing.T) {
	e := newEnv(t)
	host := "my-bucket.s3-accelerate.amazonaws.com"
	e.resolve[host] = addrs("13.249.1.1")
	rep := e.run(t, func(o *Options) {
		o.S3 = e.s3Client(func(so *s3.Options) { so.UseAccelerate = true })
	})
	wantVerdict(t, rep, VerdictFail, 1)
	want(t, rep, CheckRoute, StatusFail, "not in com.amazonaws.us-east-1.s3", "(host "+host+")")
}

func TestRouteServerRouteWarns(t *testing.T) {
	e := newEnv(t)
	e.ec2.Tables[0].Routes[2] = fakeaws.RouteFull("pl-63a5400a", "gatewayId", "vpce-0s3", "active", "Advertisement")
	rep := e.run(t)
	wantVerdict(t, rep, VerdictPass, 0)
	want(t, rep, CheckRoute, StatusWarn, "Route Server")
}

func TestFilteredRouteIsUnknown(t *testing.T) {
	e := newEnv(t)
	e.ec2.Tables[0].Routes[2] = fakeaws.RouteFull("pl-63a5400a", "gatewayId", "vpce-0s3", "filtered", "CreateRoute")
	rep := e.run(t)
	wantVerdict(t, rep, VerdictUnknown, 2)
	want(t, rep, CheckRoute, StatusUnknown, "state filtered")
}
