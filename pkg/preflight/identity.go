package preflight

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"

	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
)

// identity is what IMDS says about this node's place in the network.
type identity struct {
	Region     string
	InstanceID string
	MAC        string // eth0's: IMDS "mac" is always the primary interface
	SubnetID   string
	VPCID      string
	VPCCIDRs   []netip.Prefix
	HasIPv6    bool // eth0 has an IPv6 address, so AAAA answers are used
	ENIs       int  // attached interfaces; more than one makes "which subnet" a guess
}

// fetchIdentity reads the instance identity over IMDSv2. The caller bounds
// ctx: off EC2 the SDK would otherwise retry for seconds.
func fetchIdentity(ctx context.Context, c *imds.Client) (identity, error) {
	var id identity
	var err error
	get := func(path string, dst *string) {
		if err == nil {
			*dst, err = imdsGet(ctx, c, path)
		}
	}
	get("placement/region", &id.Region)
	get("instance-id", &id.InstanceID)
	get("mac", &id.MAC)
	eni := "network/interfaces/macs/" + id.MAC + "/"
	get(eni+"subnet-id", &id.SubnetID)
	get(eni+"vpc-id", &id.VPCID)
	var v4, v6, ipv6s, macs string
	get(eni+"vpc-ipv4-cidr-blocks", &v4)
	get("network/interfaces/macs/", &macs)
	if err != nil {
		return identity{}, err
	}
	// These two answer 404 on a VPC or interface without IPv6.
	if v6, err = imdsGet(ctx, c, eni+"vpc-ipv6-cidr-blocks"); err != nil && !isNotFound(err) {
		return identity{}, err
	}
	if ipv6s, err = imdsGet(ctx, c, eni+"ipv6s"); err != nil && !isNotFound(err) {
		return identity{}, err
	}
	id.HasIPv6 = strings.TrimSpace(ipv6s) != ""
	id.ENIs = len(strings.Fields(macs))
	for _, s := range strings.Fields(v4 + "\n" + v6) {
		p, perr := netip.ParsePrefix(s)
		if perr != nil {
			return identity{}, fmt.Errorf("imds: VPC CIDR %q: %w", s, perr)
		}
		id.VPCCIDRs = append(id.VPCCIDRs, p)
	}
	return id, nil
}

func imdsGet(ctx context.Context, c *imds.Client, path string) (string, error) {
	out, err := c.GetMetadata(ctx, &imds.GetMetadataInput{Path: path})
	if err != nil {
		return "", fmt.Errorf("imds %s: %w", path, err)
	}
	defer out.Content.Close()
	b, err := io.ReadAll(out.Content)
	if err != nil {
		return "", fmt.Errorf("imds %s: %w", path, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// isNotFound reports an HTTP 404 anywhere in err's chain, as the SDK's
// response errors carry it.
func isNotFound(err error) bool {
	var se interface{ HTTPStatusCode() int }
	return errors.As(err, &se) && se.HTTPStatusCode() == http.StatusNotFound
}

// describe is the imds check's detail.
func (id identity) describe() string {
	cidrs := make([]string, len(id.VPCCIDRs))
	for i, p := range id.VPCCIDRs {
		cidrs[i] = p.String()
	}
	return fmt.Sprintf("%s in %s, %s of %s (%s)", id.InstanceID, id.Region, id.SubnetID, id.VPCID,
		strings.Join(cidrs, ", "))
}
