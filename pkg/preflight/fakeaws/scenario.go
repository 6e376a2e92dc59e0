package fakeaws

// The node every scenario describes.
const (
	Region     = "us-east-1"
	InstanceID = "i-0abc123"
	MAC        = "0e:11:22:33:44:55"
	SubnetID   = "subnet-0priv"
	VPCID      = "vpc-0abc"
	VPCCIDR    = "10.0.0.0/16"
	PrivateIP  = "10.0.1.5"

	// RouteTableID is subnet-0priv's own route table, MainRouteTableID the
	// VPC's main table (every other subnet's).
	RouteTableID     = "rtb-0priv"
	MainRouteTableID = "rtb-0main"
	NATGatewayID     = "nat-0123"
	InternetGateway  = "igw-0pub"

	// S3PrefixListID is us-east-1's S3 prefix list, named S3PrefixListName;
	// GatewayEndpointID the S3 gateway endpoint that routes it.
	S3PrefixListID    = "pl-63a5400a"
	S3PrefixListName  = "com.amazonaws.us-east-1.s3"
	S3Service         = "com.amazonaws.us-east-1.s3"
	GatewayEndpointID = "vpce-0s3"

	// DefaultPolicy is the full-access policy a new endpoint gets.
	DefaultPolicy = `{"Version":"2008-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"}]}`
)

// S3CIDRs are the fake S3 prefix list's entries; S3 hosts of the scenarios
// resolve into them (e.g. 52.216.5.5, 54.231.1.1, 3.5.1.1).
var S3CIDRs = []string{"52.216.0.0/15", "54.231.0.0/16", "3.5.0.0/19"}

// InstanceMeta is the IMDS metadata of the node: InstanceID in SubnetID of
// VPCID (VPCCIDR), Region, one network interface.
func InstanceMeta() map[string]string {
	eni := "network/interfaces/macs/" + MAC + "/"
	return map[string]string{
		"placement/region":           Region,
		"instance-id":                InstanceID,
		"mac":                        MAC,
		"network/interfaces/macs/":   MAC + "/",
		eni + "subnet-id":            SubnetID,
		eni + "vpc-id":               VPCID,
		eni + "vpc-ipv4-cidr-blocks": VPCCIDR,
		eni + "local-ipv4s":          PrivateIP,
	}
}

// AddIPv6 gives the node's VPC an IPv6 block and its interface an IPv6
// address.
func AddIPv6(meta map[string]string) {
	eni := "network/interfaces/macs/" + MAC + "/"
	meta[eni+"vpc-ipv6-cidr-blocks"] = "2600:1f18:aaaa:bb00::/56"
	meta[eni+"ipv6s"] = "2600:1f18:aaaa:bb01::10"
}

// GatewayEndpointVPC is the "everything right" network: the subnet's own
// table (RouteTableID) routes the S3 prefix list to the associated gateway
// endpoint GatewayEndpointID and everything else to NAT gateway
// NATGatewayID; the main table sends all to an internet gateway. Tables[0]
// is the subnet's table, its Routes[2] the prefix-list route.
func GatewayEndpointVPC() *EC2 {
	return &EC2{
		Tables: []Table{
			{ID: RouteTableID, VPC: VPCID, Subnets: []string{SubnetID}, Routes: []string{
				Route(VPCCIDR, "gatewayId", "local"),
				Route("0.0.0.0/0", "natGatewayId", NATGatewayID),
				Route(S3PrefixListID, "gatewayId", GatewayEndpointID),
			}},
			{ID: MainRouteTableID, VPC: VPCID, Main: true, Routes: []string{
				Route(VPCCIDR, "gatewayId", "local"),
				Route("0.0.0.0/0", "gatewayId", InternetGateway),
			}},
		},
		Lists: []PrefixList{
			{ID: S3PrefixListID, Name: S3PrefixListName, Family: "IPv4", CIDRs: append([]string(nil), S3CIDRs...)},
			{ID: "pl-02cd2c6b", Name: "com.amazonaws.us-east-1.dynamodb", Family: "IPv4", CIDRs: []string{"52.94.0.0/22"}},
		},
		Endpoints: []Endpoint{
			{ID: GatewayEndpointID, Type: "Gateway", Service: S3Service, State: "available",
				Policy: DefaultPolicy, RouteTables: []string{RouteTableID}},
		},
	}
}

// NATOnlyVPC is GatewayEndpointVPC without the endpoint: the subnet's
// table has only the local route and 0.0.0.0/0 → NATGatewayID.
func NATOnlyVPC() *EC2 {
	e := GatewayEndpointVPC()
	e.Tables[0].Routes = e.Tables[0].Routes[:2]
	e.Endpoints = nil
	return e
}
