package fakeaws

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
)

// TestIMDSTokenRules checks the IMDSv2 rules the SDK never breaks, so
// preflight's tests cannot show them: raw requests here.
func TestIMDSTokenRules(t *testing.T) {
	srv := httptest.NewServer(&IMDS{Meta: InstanceMeta()})
	defer srv.Close()
	do := func(method, path string, hdr map[string]string) (int, string, http.Header) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	ttl := map[string]string{"X-aws-ec2-metadata-token-ttl-seconds": "300"}
	if code, body, h := do(http.MethodPut, "/latest/api/token", ttl); code != 200 || body != Token || h.Get("X-Aws-Ec2-Metadata-Token-Ttl-Seconds") != "300" {
		t.Errorf("token: %d %q %v", code, body, h)
	}
	for _, bad := range []string{"", "0", "21601", "x"} {
		if code, _, _ := do(http.MethodPut, "/latest/api/token", map[string]string{"X-aws-ec2-metadata-token-ttl-seconds": bad}); code != 400 {
			t.Errorf("TTL %q: %d, want 400", bad, code)
		}
	}
	if code, _, _ := do(http.MethodPut, "/latest/api/token", map[string]string{"X-aws-ec2-metadata-token-ttl-seconds": "300", "X-Forwarded-For": "10.0.0.9"}); code != 403 {
		t.Errorf("PUT through a proxy: %d, want 403", code)
	}
	if code, _, _ := do(http.MethodGet, "/latest/meta-data/instance-id", nil); code != 401 {
		t.Errorf("GET without token: %d, want 401", code)
	}
	tok := map[string]string{"X-aws-ec2-metadata-token": Token}
	if code, body, _ := do(http.MethodGet, "/latest/meta-data/instance-id", tok); code != 200 || body != InstanceID {
		t.Errorf("instance-id: %d %q", code, body)
	}
	if code, _, _ := do(http.MethodGet, "/latest/meta-data/no/such/path", tok); code != 404 {
		t.Errorf("unknown path: %d, want 404", code)
	}
}

// TestEC2QueryAPI drives the fake with the real EC2 client: filters,
// paging, a denied action and an action the fake does not know.
func TestEC2QueryAPI(t *testing.T) {
	f := GatewayEndpointVPC()
	f.Page = 1
	f.Deny = map[string]bool{"DescribeVpcEndpoints": true}
	srv := httptest.NewServer(f)
	defer srv.Close()
	c := ec2.New(ec2.Options{Region: Region, BaseEndpoint: aws.String(srv.URL), RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider("AKID", "SECRET", "")})
	ctx := context.Background()

	var ids []string
	p := ec2.NewDescribeRouteTablesPaginator(c, &ec2.DescribeRouteTablesInput{})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, rt := range out.RouteTables {
			ids = append(ids, aws.ToString(rt.RouteTableId))
		}
	}
	if strings.Join(ids, ",") != RouteTableID+","+MainRouteTableID || f.Called("DescribeRouteTables") != 2 {
		t.Errorf("route tables %v in %d pages", ids, f.Called("DescribeRouteTables"))
	}

	out, err := c.DescribeRouteTables(ctx, &ec2.DescribeRouteTablesInput{Filters: []ec2types.Filter{
		{Name: aws.String("association.subnet-id"), Values: []string{SubnetID}}}})
	if err != nil || len(out.RouteTables) != 1 || len(out.RouteTables[0].Routes) != 3 ||
		aws.ToString(out.RouteTables[0].Routes[2].DestinationPrefixListId) != S3PrefixListID ||
		aws.ToString(out.RouteTables[0].Routes[2].GatewayId) != GatewayEndpointID {
		t.Errorf("subnet's table: %+v, %v", out, err)
	}

	_, err = c.DescribeVpcEndpoints(ctx, &ec2.DescribeVpcEndpointsInput{})
	var api smithy.APIError
	if !errors.As(err, &api) || api.ErrorCode() != "UnauthorizedOperation" || !strings.Contains(api.ErrorMessage(), "ec2:DescribeVpcEndpoints") {
		t.Errorf("denied action: %v", err)
	}
	_, err = c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{})
	if !errors.As(err, &api) || api.ErrorCode() != "InvalidAction" {
		t.Errorf("unknown action: %v", err)
	}
}
