package preflight

import (
	"fmt"
	"net/netip"
	"strings"
)

// Route target kinds, as reported in Path.Kind.
const (
	kindLocal             = "local"
	kindVPCE              = "vpc-endpoint" // a vpce- target not (yet) confirmed as S3's
	kindGatewayEndpoint   = "gateway-endpoint"
	kindInterfaceEndpoint = "interface-endpoint"
	kindNAT               = "nat-gateway"
	kindInstance          = "instance"
	kindENI               = "network-interface"
	kindIGW               = "internet-gateway"
	kindEIGW              = "egress-only-internet-gateway"
	kindTGW               = "transit-gateway"
	kindPeering           = "vpc-peering"
	kindVGW               = "virtual-private-gateway"
	kindLGW               = "local-gateway"
	kindCarrier           = "carrier-gateway"
	kindCoreNetwork       = "core-network"
	kindOther             = "other"
)

func describeTarget(kind, id string) string {
	switch kind {
	case kindLocal:
		return "local (inside the VPC)"
	case kindNAT:
		return "NAT gateway " + id
	case kindInstance:
		return "instance " + id + " (NAT instance or appliance)"
	case kindENI:
		return "network interface " + id + " (NAT instance or appliance)"
	case kindIGW:
		return "internet gateway " + id
	case kindEIGW:
		return "egress-only internet gateway " + id
	case kindTGW:
		return "transit gateway " + id
	case kindPeering:
		return "VPC peering connection " + id
	case kindVGW:
		return "virtual private gateway " + id
	case kindLGW:
		return "local gateway " + id
	case kindCarrier:
		return "carrier gateway " + id
	case kindCoreNetwork:
		return "core network " + id
	case kindVPCE, kindGatewayEndpoint, kindInterfaceEndpoint:
		return "VPC endpoint " + id
	}
	return "target " + id
}

// judge decides, per address, which route wins and where it leads.
type judge struct {
	n    *network
	id   identity
	host string
	tbl  *lpmTable
}

func newJudge(n *network, id identity, host string) *judge {
	routes := make([]lpmRoute, len(n.routes))
	for i, r := range n.routes {
		routes[i] = lpmRoute{rank: routeRank(r), target: r.target, prefixes: []netip.Prefix{r.cidr}}
		if r.list != "" {
			routes[i].prefixes = n.lists[r.list].cidrs
		}
	}
	return &judge{n: n, id: id, host: host, tbl: newLPMTable(routes)}
}

// routeRank: Route Server routes ("Advertisement") have no documented tie
// priority; treating them as propagated is the cautious reading.
func routeRank(r rtRoute) rank {
	switch {
	case r.origin == "EnableVgwRoutePropagation" || r.origin == "Advertisement":
		return rankPropagated
	case r.list != "":
		return rankPrefixList
	}
	return rankStatic
}

func (j *judge) paths(addrs []netip.Addr) []Path {
	out := make([]Path, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, j.path(a))
	}
	return out
}

func (j *judge) path(a netip.Addr) Path {
	p := Path{Addr: a}
	if a.Unmap().Is6() && !j.id.HasIPv6 {
		msg := "this node has no IPv6 address, so it never connects to IPv6 addresses"
		return p.set(StatusNA, msg, StatusNA, msg)
	}
	m := j.tbl.lookup(a)
	if !m.ok {
		return p.set(StatusFail, "no route in "+j.n.tableID+" covers it", StatusFail, "unreachable: no route")
	}
	r := j.n.routes[m.winner.route]
	p.Route, p.Target, p.Kind = j.dest(r, m.winner.prefix), r.target, r.kind
	via := p.Route + " → " + describeTarget(r.kind, r.target)
	switch {
	case m.ambiguous():
		// AWS spreads the traffic over the tied routes: the part that takes
		// the other target misses the endpoint, so this is a failure to fix,
		// not something that cannot be determined.
		msg := j.ambiguity(m)
		return p.set(StatusFail, msg, StatusFail, "ambiguous route: part of the traffic may take "+j.tiedTargets(m))
	case strings.EqualFold(r.state, "blackhole"):
		return p.set(StatusFail, "winning route "+via+" is a blackhole (its target is gone)",
			StatusFail, "traffic is dropped by a blackhole route")
	case r.state != "" && !strings.EqualFold(r.state, "active"):
		return p.set(StatusUnknown, "winning route "+via+" is in state "+r.state, StatusUnknown, "route not active")
	}
	rs, rmsg := j.routeVerdict(a, m, r, via)
	es, emsg := j.classify(&p, r)
	return p.set(rs, rmsg, es, emsg)
}

// set records both halves and the address's overall status and detail.
func (p Path) set(rs Status, rmsg string, es Status, emsg string) Path {
	p.routeStatus, p.routeMsg, p.endpointStatus, p.endpointMsg = rs, rmsg, es, emsg
	p.Status = worst(rs, es)
	p.Detail = rmsg
	if emsg != rmsg {
		p.Detail += "; " + emsg
	}
	return p
}

func (j *judge) dest(r rtRoute, hit netip.Prefix) string {
	if r.list == "" {
		return r.cidr.String()
	}
	if name := j.n.lists[r.list].name; name != "" {
		return fmt.Sprintf("%s (%s, entry %s)", r.list, name, hit)
	}
	return fmt.Sprintf("%s (entry %s)", r.list, hit)
}

func (j *judge) ambiguity(m lpmMatch) string {
	parts := []string{j.hitVia(m.winner)}
	for _, h := range m.tied {
		parts = append(parts, j.hitVia(h))
	}
	return fmt.Sprintf("ambiguous: %s match it at /%d with equal priority; AWS picks one and does not say which, so part of the traffic may miss the endpoint; remove the overlap",
		strings.Join(parts, " and "), m.winner.prefix.Bits())
}

// tiedTargets names every target of a tie, the winner's first.
func (j *judge) tiedTargets(m lpmMatch) string {
	parts := []string{describeTarget(j.n.routes[m.winner.route].kind, j.n.routes[m.winner.route].target)}
	for _, h := range m.tied {
		r := j.n.routes[h.route]
		parts = append(parts, describeTarget(r.kind, r.target))
	}
	return strings.Join(parts, " or ")
}

func (j *judge) hitVia(h lpmHit) string {
	r := j.n.routes[h.route]
	return j.dest(r, h.prefix) + " → " + r.target
}

// routeVerdict: the route is right when it leads to an endpoint (vpce-) or
// stays in the VPC (local, where interface endpoints live).
func (j *judge) routeVerdict(a netip.Addr, m lpmMatch, r rtRoute, via string) (Status, string) {
	if r.kind == kindVPCE || r.kind == kindLocal {
		if r.origin == "Advertisement" {
			return StatusWarn, "via " + via + ", a Route Server route whose tie priority AWS does not document"
		}
		return StatusPass, "via " + via
	}
	for _, h := range m.all[1:] {
		if sr := j.n.routes[h.route]; sr.kind == kindVPCE {
			return StatusFail, fmt.Sprintf("route %s is more specific than %s and shadows it",
				via, j.dest(sr, h.prefix)+" → "+sr.target)
		}
	}
	if s3, ok := j.n.lists[j.n.s3List]; ok && !containsAddr(s3.cidrs, a) {
		return StatusFail, fmt.Sprintf("takes %s: not in %s (%s), so no S3 gateway endpoint of %s can carry it (host %s)",
			via, s3.name, s3.id, j.id.Region, j.host)
	}
	return StatusFail, "no endpoint route covers it; it takes " + via
}

func containsAddr(ps []netip.Prefix, a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// classify judges the winning target; p gains the endpoint's kind and id.
func (j *judge) classify(p *Path, r rtRoute) (Status, string) {
	switch r.kind {
	case kindVPCE:
		return j.gateway(p, r)
	case kindLocal:
		return j.iface(p)
	}
	p.traverses = true
	return StatusFail, "would traverse " + describeTarget(r.kind, r.target)
}

// gateway confirms a vpce- target is this region's available S3 gateway
// endpoint associated with this table; anything else behind vpce- (a Gateway
// Load Balancer endpoint, another service) is not a private path to S3.
func (j *judge) gateway(p *Path, r rtRoute) (Status, string) {
	e, ok := j.n.endpoints[r.target]
	switch {
	case !ok:
		return StatusFail, r.target + " is not an endpoint of " + j.id.VPCID + " (DescribeVpcEndpoints does not list it)"
	case !strings.EqualFold(e.typ, "Gateway"):
		return StatusFail, fmt.Sprintf("would traverse %s endpoint %s, not an S3 gateway endpoint", e.typ, e.id)
	case !strings.EqualFold(e.service, s3ServiceName(j.id.Region)):
		return StatusFail, fmt.Sprintf("%s serves %s, not %s", e.id, e.service, s3ServiceName(j.id.Region))
	case !e.available():
		return StatusFail, fmt.Sprintf("S3 gateway endpoint %s is %s, not available", e.id, e.state)
	case !contains(e.routeTables, j.n.tableID):
		return StatusFail, fmt.Sprintf("S3 gateway endpoint %s is not associated with %s", e.id, j.n.tableID)
	}
	p.Kind, p.endpointID = kindGatewayEndpoint, e.id
	return StatusPass, "S3 gateway endpoint " + e.id
}

// iface: inside the VPC only an S3 interface endpoint's address is a private
// path to S3; any other local address is some host DNS was pointed at.
func (j *judge) iface(p *Path) (Status, string) {
	id, ok := j.n.eniIPs[p.Addr.Unmap()]
	if !ok {
		return StatusFail, "address is inside the VPC but belongs to no S3 interface endpoint"
	}
	e := j.n.endpoints[id]
	if !e.available() {
		return StatusFail, fmt.Sprintf("S3 interface endpoint %s is %s, not available", id, e.state)
	}
	p.Kind, p.endpointID = kindInterfaceEndpoint, id
	return StatusPass, "S3 interface endpoint " + id
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
