package preflight

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
)

// This file asks EC2 about the subnet's routing and turns the answers into the
// plain model below; classify.go judges that model without calling AWS.

// rtRoute is one route of the subnet's route table.
type rtRoute struct {
	cidr   netip.Prefix // destination, unless list is set
	list   string       // destination prefix list id (pl-…)
	kind   string       // target kind, one of the kind* constants
	target string       // target id: "local", "nat-0123", "vpce-0s3", …
	state  string       // active | blackhole | filtered
	origin string       // CreateRouteTable | CreateRoute | EnableVgwRoutePropagation | Advertisement
}

type prefixList struct {
	id, name string
	cidrs    []netip.Prefix
}

type vpcEndpoint struct {
	id, typ, service, state, policy string
	routeTables, enis               []string
}

// network is everything classify needs about one subnet.
type network struct {
	tableID   string
	mainTable bool // the subnet has no explicit association and uses the VPC's main table
	routes    []rtRoute
	lists     map[string]prefixList  // referenced lists, plus the region's S3 list
	s3List    string                 // id of com.amazonaws.<region>.s3, "" if EC2 has none
	endpoints map[string]vpcEndpoint // every endpoint in the VPC
	eniIPs    map[netip.Addr]string  // address of an S3 interface endpoint's ENI → endpoint id
}

// ec2API runs EC2 calls against the VPC's region, whatever region the client
// was built for: the route table only exists there.
type ec2API struct {
	c      *ec2.Client
	region func(*ec2.Options)
}

func newEC2API(c *ec2.Client, region string) ec2API {
	return ec2API{c: c, region: func(o *ec2.Options) { o.Region = region }}
}

// loadNetwork reads the route table, prefix lists, endpoints and interface
// endpoint addresses for the node's subnet.
func loadNetwork(ctx context.Context, api ec2API, id identity) (*network, error) {
	n := &network{lists: map[string]prefixList{}, endpoints: map[string]vpcEndpoint{}, eniIPs: map[netip.Addr]string{}}
	if err := api.routeTable(ctx, id, n); err != nil {
		return nil, err
	}
	if err := api.prefixLists(ctx, s3ListName(id.Region), n); err != nil {
		return nil, err
	}
	if err := api.vpcEndpoints(ctx, id, n); err != nil {
		return nil, err
	}
	return n, api.interfaceIPs(ctx, id.Region, n)
}

func s3ListName(region string) string    { return "com.amazonaws." + region + ".s3" }
func s3ServiceName(region string) string { return "com.amazonaws." + region + ".s3" }

// routeTable finds the table for the subnet: an explicit association, else
// the VPC's main table (a subnet without one uses it implicitly).
func (api ec2API) routeTable(ctx context.Context, id identity, n *network) error {
	rts, err := api.describeRouteTables(ctx, filter("association.subnet-id", id.SubnetID))
	if err == nil && len(rts) == 0 {
		n.mainTable = true
		rts, err = api.describeRouteTables(ctx, filter("vpc-id", id.VPCID), filter("association.main", "true"))
	}
	if err != nil {
		return err
	}
	if len(rts) == 0 {
		return fmt.Errorf("no route table for %s nor a main route table for %s", id.SubnetID, id.VPCID)
	}
	n.tableID = aws.ToString(rts[0].RouteTableId)
	for _, r := range rts[0].Routes {
		route, err := convertRoute(r)
		if err != nil {
			return fmt.Errorf("route table %s: %w", n.tableID, err)
		}
		n.routes = append(n.routes, route)
	}
	return nil
}

func (api ec2API) describeRouteTables(ctx context.Context, fs ...types.Filter) ([]types.RouteTable, error) {
	var out []types.RouteTable
	p := ec2.NewDescribeRouteTablesPaginator(api.c, &ec2.DescribeRouteTablesInput{Filters: fs})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx, api.region)
		if err != nil {
			return nil, ec2Error(err)
		}
		out = append(out, page.RouteTables...)
	}
	return out, nil
}

// prefixLists names and expands every list the table references, and the
// region's S3 list even when unreferenced, to tell "not routed to the
// endpoint" from "not an S3 address of this region at all".
func (api ec2API) prefixLists(ctx context.Context, s3Name string, n *network) error {
	var ids []string
	for _, r := range n.routes {
		if r.list != "" {
			ids = append(ids, r.list)
		}
	}
	var lists []types.ManagedPrefixList
	if len(ids) > 0 {
		got, err := api.describeLists(ctx, &ec2.DescribeManagedPrefixListsInput{PrefixListIds: ids})
		if err != nil {
			return err
		}
		lists = got
	}
	if !hasListNamed(lists, s3Name) {
		got, err := api.describeLists(ctx, &ec2.DescribeManagedPrefixListsInput{
			Filters: []types.Filter{filter("prefix-list-name", s3Name)}})
		if err != nil {
			return err
		}
		lists = append(lists, got...)
	}
	for _, l := range lists {
		pl, err := api.entries(ctx, l)
		if err != nil {
			return err
		}
		n.lists[pl.id] = pl
		if pl.name == s3Name {
			n.s3List = pl.id
		}
	}
	return nil
}

func hasListNamed(lists []types.ManagedPrefixList, name string) bool {
	for _, l := range lists {
		if aws.ToString(l.PrefixListName) == name {
			return true
		}
	}
	return false
}

func (api ec2API) describeLists(ctx context.Context, in *ec2.DescribeManagedPrefixListsInput) ([]types.ManagedPrefixList, error) {
	var out []types.ManagedPrefixList
	p := ec2.NewDescribeManagedPrefixListsPaginator(api.c, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx, api.region)
		if err != nil {
			return nil, ec2Error(err)
		}
		out = append(out, page.PrefixLists...)
	}
	return out, nil
}

// entries expands one list, page by page (MaxResults is at most 100).
func (api ec2API) entries(ctx context.Context, l types.ManagedPrefixList) (prefixList, error) {
	pl := prefixList{id: aws.ToString(l.PrefixListId), name: aws.ToString(l.PrefixListName)}
	p := ec2.NewGetManagedPrefixListEntriesPaginator(api.c, &ec2.GetManagedPrefixListEntriesInput{
		PrefixListId: l.PrefixListId, MaxResults: aws.Int32(100)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx, api.region)
		if err != nil {
			return prefixList{}, ec2Error(err)
		}
		for _, e := range page.Entries {
			c, err := netip.ParsePrefix(aws.ToString(e.Cidr))
			if err != nil {
				return prefixList{}, fmt.Errorf("prefix list %s: %w", pl.id, err)
			}
			pl.cidrs = append(pl.cidrs, c)
		}
	}
	return pl, nil
}

// vpcEndpoints reads every endpoint of the VPC, not only S3's: a route to a
// vpce- that is a Gateway Load Balancer endpoint must be recognised as one.
func (api ec2API) vpcEndpoints(ctx context.Context, id identity, n *network) error {
	p := ec2.NewDescribeVpcEndpointsPaginator(api.c, &ec2.DescribeVpcEndpointsInput{
		Filters: []types.Filter{filter("vpc-id", id.VPCID)}})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx, api.region)
		if err != nil {
			return ec2Error(err)
		}
		for _, e := range page.VpcEndpoints {
			ep := vpcEndpoint{
				id: aws.ToString(e.VpcEndpointId), typ: string(e.VpcEndpointType),
				service: aws.ToString(e.ServiceName), state: string(e.State),
				policy: aws.ToString(e.PolicyDocument), routeTables: e.RouteTableIds, enis: e.NetworkInterfaceIds,
			}
			n.endpoints[ep.id] = ep
		}
	}
	return nil
}

// interfaceIPs maps the addresses of S3 interface endpoints' network
// interfaces, the only in-VPC addresses that are a private path to S3.
func (api ec2API) interfaceIPs(ctx context.Context, region string, n *network) error {
	owner := map[string]string{}
	var enis []string
	for _, e := range n.endpoints {
		if e.isS3(region, types.VpcEndpointTypeInterface) {
			for _, eni := range e.enis {
				owner[eni] = e.id
				enis = append(enis, eni)
			}
		}
	}
	if len(enis) == 0 {
		return nil
	}
	p := ec2.NewDescribeNetworkInterfacesPaginator(api.c, &ec2.DescribeNetworkInterfacesInput{NetworkInterfaceIds: enis})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx, api.region)
		if err != nil {
			return ec2Error(err)
		}
		for _, ni := range page.NetworkInterfaces {
			for _, a := range eniAddrs(ni) {
				n.eniIPs[a] = owner[aws.ToString(ni.NetworkInterfaceId)]
			}
		}
	}
	return nil
}

func eniAddrs(ni types.NetworkInterface) []netip.Addr {
	var out []netip.Addr
	add := func(s *string) {
		if a, err := netip.ParseAddr(aws.ToString(s)); err == nil {
			out = append(out, a)
		}
	}
	add(ni.PrivateIpAddress)
	for _, p := range ni.PrivateIpAddresses {
		add(p.PrivateIpAddress)
	}
	for _, p := range ni.Ipv6Addresses {
		add(p.Ipv6Address)
	}
	return out
}

// isS3 compares case-insensitively: the wire says "available"/"Interface"
// while the SDK's constants read "Available"/"Interface".
func (e vpcEndpoint) isS3(region string, typ types.VpcEndpointType) bool {
	return strings.EqualFold(e.typ, string(typ)) && strings.EqualFold(e.service, s3ServiceName(region))
}

func (e vpcEndpoint) available() bool {
	return strings.EqualFold(e.state, string(types.StateAvailable))
}

func filter(name, value string) types.Filter {
	return types.Filter{Name: aws.String(name), Values: []string{value}}
}

// missingPermissionError names the IAM action a caller lacks.
type missingPermissionError struct {
	action string
	err    error
}

func (e *missingPermissionError) Error() string {
	return "missing IAM permission " + e.action + ": " + e.err.Error()
}

func (e *missingPermissionError) Unwrap() error { return e.err }

// ec2Error turns UnauthorizedOperation into the action to grant. The action
// is the SDK's operation name: AWS's message text is not a stable format.
func ec2Error(err error) error {
	var api smithy.APIError
	var op *smithy.OperationError
	if errors.As(err, &api) && api.ErrorCode() == "UnauthorizedOperation" && errors.As(err, &op) {
		return &missingPermissionError{action: "ec2:" + op.Operation(), err: err}
	}
	return err
}

// convertRoute reduces an EC2 route to its destination and its one target.
func convertRoute(r types.Route) (rtRoute, error) {
	out := rtRoute{list: aws.ToString(r.DestinationPrefixListId), state: string(r.State), origin: string(r.Origin)}
	if out.list == "" {
		dest := aws.ToString(r.DestinationCidrBlock)
		if dest == "" {
			dest = aws.ToString(r.DestinationIpv6CidrBlock)
		}
		p, err := netip.ParsePrefix(dest)
		if err != nil {
			return rtRoute{}, fmt.Errorf("route destination %q: %w", dest, err)
		}
		out.cidr = p
	}
	out.kind, out.target = routeTarget(r)
	return out, nil
}

// routeTarget picks the target field EC2 filled in. An instance target also
// carries its ENI id, so the instance is looked at first.
func routeTarget(r types.Route) (kind, id string) {
	switch {
	case r.GatewayId != nil:
		return gatewayKind(*r.GatewayId), *r.GatewayId
	case r.NatGatewayId != nil:
		return kindNAT, *r.NatGatewayId
	case r.InstanceId != nil:
		return kindInstance, *r.InstanceId
	case r.NetworkInterfaceId != nil:
		return kindENI, *r.NetworkInterfaceId
	case r.EgressOnlyInternetGatewayId != nil:
		return kindEIGW, *r.EgressOnlyInternetGatewayId
	case r.TransitGatewayId != nil:
		return kindTGW, *r.TransitGatewayId
	case r.VpcPeeringConnectionId != nil:
		return kindPeering, *r.VpcPeeringConnectionId
	case r.LocalGatewayId != nil:
		return kindLGW, *r.LocalGatewayId
	case r.CarrierGatewayId != nil:
		return kindCarrier, *r.CarrierGatewayId
	case r.CoreNetworkArn != nil:
		return kindCoreNetwork, *r.CoreNetworkArn
	case r.OdbNetworkArn != nil:
		return kindOther, *r.OdbNetworkArn
	}
	return kindOther, "unknown"
}

// gatewayKind: GatewayId holds "local", internet gateways, virtual private
// gateways and VPC endpoints alike; the id prefix tells them apart.
func gatewayKind(id string) string {
	switch {
	case id == "local":
		return kindLocal
	case strings.HasPrefix(id, "vpce-"):
		return kindVPCE
	case strings.HasPrefix(id, "igw-"):
		return kindIGW
	case strings.HasPrefix(id, "vgw-"):
		return kindVGW
	}
	return kindOther
}
