package preflight

import (
	"fmt"
	"strings"

	"github.com/s3bak/s3bak/pkg/units"
)

// This file folds the per-address paths into the route, endpoint, policy and
// cost checks.

// group joins paths with the same status and message, so that forty
// addresses behind one route read as one sentence. N/A paths are left out of
// the status unless nothing else is there.
func group(paths []Path, status func(Path) Status, msg func(Path) string) (Status, string) {
	type key struct {
		s Status
		m string
	}
	var order []key
	addrs := map[key][]string{}
	s := StatusNA
	for _, p := range paths {
		k := key{status(p), msg(p)}
		if _, ok := addrs[k]; !ok {
			order = append(order, k)
		}
		addrs[k] = append(addrs[k], p.Addr.String())
		s = worst(s, k.s)
	}
	parts := make([]string, len(order))
	for i, k := range order {
		parts[i] = strings.Join(addrs[k], ", ") + ": " + k.m
	}
	return s, strings.Join(parts, "; ")
}

func routeCheck(n *network, id identity, paths []Path) Check {
	s, msg := group(paths, func(p Path) Status { return p.routeStatus }, func(p Path) string { return p.routeMsg })
	c := Check{ID: CheckRoute, Status: s, Detail: tableDesc(n, id) + "; " + msg}
	if s == StatusNA {
		c.Status = StatusFail
		c.Detail += " (no address of the host is usable from this node)"
	}
	if c.Status == StatusFail {
		c.Hint = routeHint(n, id, paths)
	}
	return c
}

func tableDesc(n *network, id identity) string {
	d := n.tableID + " (explicitly associated with " + id.SubnetID + ")"
	if n.mainTable {
		d = n.tableID + " (main route table of " + id.VPCID + "; " + id.SubnetID + " has no explicit association)"
	}
	pl, ok := n.lists[n.s3List]
	if !ok {
		return d + "; EC2 has no prefix list " + s3ListName(id.Region)
	}
	d += fmt.Sprintf("; S3 prefix list %s (%s, %s)", pl.id, pl.name, units.Plural(len(pl.cidrs), "CIDR"))
	for _, r := range n.routes {
		if r.list == pl.id {
			return d + " routed to " + r.target
		}
	}
	return d + " not referenced by any route"
}

// routeHint names the one change that would fix the table.
func routeHint(n *network, id identity, paths []Path) string {
	for _, p := range paths {
		if strings.Contains(p.routeMsg, "shadows") {
			return "delete the more specific route (or narrow it) so the S3 prefix-list route to the endpoint wins"
		}
	}
	var unassociated, gateways []string
	for _, e := range n.endpoints {
		if e.isS3(id.Region, "Gateway") {
			gateways = append(gateways, e.id)
			if !contains(e.routeTables, n.tableID) {
				unassociated = append(unassociated, e.id)
			}
		}
	}
	switch {
	case len(unassociated) > 0:
		return fmt.Sprintf("S3 gateway endpoint %s is not associated with %s: aws ec2 modify-vpc-endpoint --vpc-endpoint-id %s --add-route-table-ids %s",
			unassociated[0], n.tableID, unassociated[0], n.tableID)
	case len(gateways) == 0:
		return fmt.Sprintf("%s has no S3 gateway endpoint: aws ec2 create-vpc-endpoint --vpc-id %s --service-name %s --route-table-ids %s",
			id.VPCID, id.VPCID, s3ServiceName(id.Region), n.tableID)
	}
	return ""
}

func endpointCheck(host string, paths []Path) Check {
	s, msg := group(paths, func(p Path) Status { return p.endpointStatus }, func(p Path) string { return p.endpointMsg })
	c := Check{ID: CheckEndpoint, Status: s, Detail: host + ": " + msg}
	if s == StatusNA {
		c.Status = StatusFail
	}
	return c
}

// endpointIDs lists, once each, the S3 endpoints proven to carry traffic.
func endpointIDs(paths []Path) []string {
	var ids []string
	for _, p := range paths {
		if p.endpointID != "" && p.endpointStatus == StatusPass && !contains(ids, p.endpointID) {
			ids = append(ids, p.endpointID)
		}
	}
	return ids
}

func policyCheck(n *network, region, bucket string, paths []Path) Check {
	ids := endpointIDs(paths)
	c := Check{ID: CheckPolicy, Status: StatusNA, Detail: "no S3 VPC endpoint carries the traffic"}
	if len(ids) == 0 {
		return c
	}
	var details []string
	for _, id := range ids {
		s, d := judgePolicy(id, n.endpoints[id].policy, bucket, partition(region))
		c.Status = worst(c.Status, s)
		details = append(details, d)
	}
	c.Detail = strings.Join(details, "; ")
	c.Hint = sourceVpceHint(ids, bucket)
	return c
}

// costCheck prices the NAT gateway data processing the backup would incur.
// Only NAT gateways bill per GB processed; an internet gateway or a NAT
// instance does not, so those paths get no figure.
func costCheck(paths []Path, estimate int64, pricePerGB float64) Check {
	var nats []string
	allEndpoints, iface := true, false
	for _, p := range paths {
		if p.Status == StatusNA {
			continue
		}
		if p.traverses && p.Kind == kindNAT && !contains(nats, p.Target) {
			nats = append(nats, p.Target)
		}
		allEndpoints = allEndpoints && p.endpointStatus == StatusPass
		iface = iface || p.Kind == kindInterfaceEndpoint
	}
	c := Check{ID: CheckCost}
	switch {
	case len(nats) > 0 && estimate > 0:
		c.Status, c.Detail = StatusWarn, fmt.Sprintf("through NAT gateway %s: %.1f GB × $%.3f/GB ≈ $%.2f of NAT data processing; a gateway endpoint costs nothing",
			strings.Join(nats, ", "), float64(estimate)/bytesPerGB, pricePerGB, natCost(estimate, pricePerGB))
	case len(nats) > 0:
		c.Status, c.Detail = StatusWarn, fmt.Sprintf("through NAT gateway %s every GB costs $%.3f of NAT data processing; a gateway endpoint costs nothing",
			strings.Join(nats, ", "), pricePerGB)
	case allEndpoints && iface:
		c.Status, c.Detail = StatusPass, "no NAT data processing; the interface endpoint bills per GB processed (PrivateLink pricing)"
	case allEndpoints:
		c.Status, c.Detail = StatusPass, "no NAT data processing: traffic takes the gateway endpoint, which is free"
	default:
		c.Status, c.Detail = StatusNA, "no NAT gateway on the path"
	}
	return c
}
