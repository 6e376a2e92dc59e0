package fakeaws

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
)

// EC2 answers the EC2 Query API actions preflight uses:
// DescribeRouteTables, DescribeManagedPrefixLists,
// GetManagedPrefixListEntries, DescribeVpcEndpoints and
// DescribeNetworkInterfaces. Any other action is InvalidAction (400).
type EC2 struct {
	Tables    []Table
	Lists     []PrefixList
	Endpoints []Endpoint
	ENIs      []ENI
	// Deny answers these actions 403 UnauthorizedOperation, with the
	// message real EC2 sends.
	Deny map[string]bool
	// Page is the number of items per page of every list answer; 0 = all
	// at once.
	Page int

	mu    sync.Mutex
	calls []string // actions, in order
}

// Table is a route table.
type Table struct {
	ID, VPC string
	// Main makes it the VPC's main table (an association with main=true).
	Main bool
	// Subnets are its explicit subnet associations.
	Subnets []string
	// Routes are <item> elements of its routeSet, see Route.
	Routes []string
}

// PrefixList is a managed prefix list; names starting "com.amazonaws."
// are owned by AWS.
type PrefixList struct {
	ID, Name, Family string // Family IPv4 or IPv6
	CIDRs            []string
}

// Endpoint is a VPC endpoint of VPC (default VPCID).
type Endpoint struct {
	ID      string
	Type    string // Gateway, Interface, GatewayLoadBalancer
	Service string // e.g. com.amazonaws.us-east-1.s3
	State   string // available, pending, …
	Policy  string
	VPC     string
	// RouteTables are a gateway endpoint's associated tables, ENIs an
	// interface endpoint's network interfaces.
	RouteTables, ENIs []string
}

// ENI is a network interface (in SubnetID of VPCID).
type ENI struct {
	ID   string
	IPv4 []string // the first is primary
	IPv6 []string
}

// Route renders one active, CreateRoute <item> of a routeSet. dest is a
// CIDR (IPv4 or IPv6) or a pl- id; field names the target element
// (gatewayId, natGatewayId, transitGatewayId, …).
func Route(dest, field, target string) string {
	return RouteFull(dest, field, target, "active", "CreateRoute")
}

// RouteFull is Route with a state (active, blackhole, filtered) and an
// origin (CreateRouteTable, CreateRoute, EnableVgwRoutePropagation,
// Advertisement).
func RouteFull(dest, field, target, state, origin string) string {
	destField := "destinationCidrBlock"
	switch {
	case strings.HasPrefix(dest, "pl-"):
		destField = "destinationPrefixListId"
	case strings.Contains(dest, ":"):
		destField = "destinationIpv6CidrBlock"
	}
	return fmt.Sprintf("<item><%s>%s</%s><%s>%s</%s><state>%s</state><origin>%s</origin></item>",
		destField, x(dest), destField, field, x(target), field, state, origin)
}

func x(s string) string {
	var b bytes.Buffer
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

// Calls are the actions asked so far, in order.
func (f *EC2) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// Total is the number of actions asked so far.
func (f *EC2) Total() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

// Called is how often action was asked.
func (f *EC2) Called(action string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if c == action {
			n++
		}
	}
	return n
}

func (f *EC2) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.ParseForm() != nil {
		http.Error(w, "", http.StatusBadRequest)
		return
	}
	form := r.PostForm
	action := form.Get("Action")
	f.mu.Lock()
	f.calls = append(f.calls, action)
	f.mu.Unlock()
	if f.Deny[action] {
		ec2Err(w, http.StatusForbidden, "UnauthorizedOperation", "You are not authorized to perform this operation. User: arn:aws:sts::111122223333:assumed-role/node/"+InstanceID+" is not authorized to perform: ec2:"+action)
		return
	}
	var items []string
	var set string
	switch action {
	case "DescribeRouteTables":
		set, items = "routeTableSet", f.routeTables(filters(form))
	case "DescribeManagedPrefixLists":
		set, items = "prefixListSet", f.managedLists(form)
	case "GetManagedPrefixListEntries":
		l, ok := f.list(form.Get("PrefixListId"))
		if !ok {
			ec2Err(w, http.StatusBadRequest, "InvalidPrefixListID.NotFound", "The prefix list ID does not exist")
			return
		}
		set = "entrySet"
		for _, c := range l.CIDRs {
			items = append(items, "<item><cidr>"+x(c)+"</cidr></item>")
		}
	case "DescribeVpcEndpoints":
		set, items = "vpcEndpointSet", f.vpcEndpoints(filters(form))
	case "DescribeNetworkInterfaces":
		set, items = "networkInterfaceSet", f.networkInterfaces(flatList(form, "NetworkInterfaceId"))
	default:
		ec2Err(w, http.StatusBadRequest, "InvalidAction", "The action "+action+" is not valid for this web service.")
		return
	}
	f.reply(w, form, action, set, items)
}

// reply pages items and sends <nextToken> only when another page exists:
// the SDK's paginators keep asking while a token comes back.
func (f *EC2) reply(w http.ResponseWriter, form url.Values, action, set string, items []string) {
	start, _ := strconv.Atoi(form.Get("NextToken"))
	start = min(max(start, 0), len(items))
	size := len(items) - start
	if f.Page > 0 && f.Page < size {
		size = f.Page
	}
	if mr, _ := strconv.Atoi(form.Get("MaxResults")); mr > 0 && mr < size {
		size = mr
	}
	end := min(start+size, len(items))
	var b strings.Builder
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+`<%sResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>req-1</requestId><%s>`, action, set)
	for _, it := range items[start:end] {
		b.WriteString(it)
	}
	fmt.Fprintf(&b, "</%s>", set)
	if end < len(items) {
		fmt.Fprintf(&b, "<nextToken>%d</nextToken>", end)
	}
	fmt.Fprintf(&b, "</%sResponse>", action)
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	io.WriteString(w, b.String())
}

func ec2Err(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+`<Response><Errors><Error><Code>%s</Code><Message>%s</Message></Error></Errors><RequestID>req-err</RequestID></Response>`, code, x(msg))
}

// filters decodes Filter.N.Name / Filter.N.Value.M (1-based).
func filters(form url.Values) map[string][]string {
	out := map[string][]string{}
	for i := 1; form.Get(fmt.Sprintf("Filter.%d.Name", i)) != ""; i++ {
		name := form.Get(fmt.Sprintf("Filter.%d.Name", i))
		out[name] = flatList(form, fmt.Sprintf("Filter.%d.Value", i))
	}
	return out
}

// flatList decodes NAME.1, NAME.2, ….
func flatList(form url.Values, name string) []string {
	var out []string
	for i := 1; form.Get(fmt.Sprintf("%s.%d", name, i)) != ""; i++ {
		out = append(out, form.Get(fmt.Sprintf("%s.%d", name, i)))
	}
	return out
}

// match reports whether a resource with the given attribute values passes
// one filter (absent filter: pass).
func match(fs map[string][]string, name string, values ...string) bool {
	want, ok := fs[name]
	if !ok {
		return true
	}
	for _, w := range want {
		for _, v := range values {
			if w == v {
				return true
			}
		}
	}
	return false
}

func (f *EC2) routeTables(fs map[string][]string) []string {
	var items []string
	for _, t := range f.Tables {
		if !match(fs, "vpc-id", t.VPC) || !match(fs, "association.subnet-id", t.Subnets...) ||
			!match(fs, "association.main", strconv.FormatBool(t.Main)) {
			continue
		}
		var assoc strings.Builder
		if t.Main {
			fmt.Fprintf(&assoc, "<item><routeTableAssociationId>rtbassoc-main</routeTableAssociationId><routeTableId>%s</routeTableId><main>true</main><associationState><state>associated</state></associationState></item>", t.ID)
		}
		for i, s := range t.Subnets {
			fmt.Fprintf(&assoc, "<item><routeTableAssociationId>rtbassoc-%d</routeTableAssociationId><routeTableId>%s</routeTableId><subnetId>%s</subnetId><main>false</main><associationState><state>associated</state></associationState></item>", i, t.ID, s)
		}
		items = append(items, fmt.Sprintf("<item><routeTableId>%s</routeTableId><vpcId>%s</vpcId><ownerId>111122223333</ownerId><routeSet>%s</routeSet><associationSet>%s</associationSet><tagSet/></item>",
			t.ID, t.VPC, strings.Join(t.Routes, ""), assoc.String()))
	}
	return items
}

func (f *EC2) list(id string) (PrefixList, bool) {
	for _, l := range f.Lists {
		if l.ID == id {
			return l, true
		}
	}
	return PrefixList{}, false
}

func (f *EC2) managedLists(form url.Values) []string {
	fs := filters(form)
	ids := flatList(form, "PrefixListId")
	var items []string
	for _, l := range f.Lists {
		if (len(ids) > 0 && !match(map[string][]string{"id": ids}, "id", l.ID)) || !match(fs, "prefix-list-name", l.Name) {
			continue
		}
		owner := "111122223333"
		if strings.HasPrefix(l.Name, "com.amazonaws.") {
			owner = "AWS"
		}
		items = append(items, fmt.Sprintf("<item><prefixListId>%s</prefixListId><addressFamily>%s</addressFamily><state>create-complete</state><prefixListArn>arn:aws:ec2:%s:aws:prefix-list/%s</prefixListArn><prefixListName>%s</prefixListName><maxEntries>%d</maxEntries><version>1</version><ownerId>%s</ownerId></item>",
			l.ID, l.Family, Region, l.ID, x(l.Name), len(l.CIDRs), owner))
	}
	return items
}

func (f *EC2) vpcEndpoints(fs map[string][]string) []string {
	var items []string
	for _, e := range f.Endpoints {
		vpc := e.VPC
		if vpc == "" {
			vpc = VPCID
		}
		if !match(fs, "vpc-id", vpc) || !match(fs, "service-name", e.Service) || !match(fs, "vpc-endpoint-type", e.Type) ||
			!match(fs, "vpc-endpoint-id", e.ID) {
			continue
		}
		var rts, enis strings.Builder
		for _, r := range e.RouteTables {
			fmt.Fprintf(&rts, "<item>%s</item>", r)
		}
		for _, n := range e.ENIs {
			fmt.Fprintf(&enis, "<item>%s</item>", n)
		}
		items = append(items, fmt.Sprintf("<item><vpcEndpointId>%s</vpcEndpointId><vpcEndpointType>%s</vpcEndpointType><vpcId>%s</vpcId><serviceName>%s</serviceName><state>%s</state><policyDocument>%s</policyDocument><routeTableIdSet>%s</routeTableIdSet><subnetIdSet/><networkInterfaceIdSet>%s</networkInterfaceIdSet><privateDnsEnabled>%t</privateDnsEnabled><ipAddressType>ipv4</ipAddressType><requesterManaged>false</requesterManaged><ownerId>111122223333</ownerId></item>",
			e.ID, e.Type, vpc, e.Service, e.State, x(e.Policy), rts.String(), enis.String(), e.Type == "Interface"))
	}
	return items
}

func (f *EC2) networkInterfaces(ids []string) []string {
	var items []string
	for _, n := range f.ENIs {
		if len(ids) > 0 && !match(map[string][]string{"id": ids}, "id", n.ID) {
			continue
		}
		var v4, v6 strings.Builder
		for i, a := range n.IPv4 {
			fmt.Fprintf(&v4, "<item><privateIpAddress>%s</privateIpAddress><primary>%t</primary></item>", a, i == 0)
		}
		for _, a := range n.IPv6 {
			fmt.Fprintf(&v6, "<item><ipv6Address>%s</ipv6Address><isPrimaryIpv6>false</isPrimaryIpv6></item>", a)
		}
		primary := ""
		if len(n.IPv4) > 0 {
			primary = n.IPv4[0]
		}
		items = append(items, fmt.Sprintf("<item><networkInterfaceId>%s</networkInterfaceId><subnetId>%s</subnetId><vpcId>%s</vpcId><interfaceType>vpc_endpoint</interfaceType><requesterManaged>true</requesterManaged><description>VPC Endpoint Interface</description><status>in-use</status><privateIpAddress>%s</privateIpAddress><privateIpAddressesSet>%s</privateIpAddressesSet><ipv6AddressesSet>%s</ipv6AddressesSet></item>",
			n.ID, SubnetID, VPCID, primary, v4.String(), v6.String()))
	}
	return items
}
