package preflight

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

// The fakes below speak the real wire formats (IMDSv2 token rules, the EC2
// Query API's form POST and XML answers, S3's HEAD bucket headers) and are
// driven through the real aws-sdk-go-v2 clients.

// fakeIMDS serves IMDSv2: PUT /latest/api/token with a TTL header, then GETs
// that must carry the token (401 without it), 404 for unknown paths.
type fakeIMDS struct {
	meta        map[string]string // path under /latest/meta-data/ → body
	noTTLHeader bool              // misbehave: omit the TTL header on the token reply

	mu    sync.Mutex
	calls int
}

const imdsToken = "AQAEAFake-token=="

func (f *fakeIMDS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.calls++
	f.mu.Unlock()
	switch {
	case r.URL.Path == "/latest/api/token" && r.Method == http.MethodPut:
		if r.Header.Get("X-Forwarded-For") != "" {
			http.Error(w, "", http.StatusForbidden)
			return
		}
		ttl := r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds")
		if n, err := strconv.Atoi(ttl); err != nil || n < 1 || n > 21600 {
			http.Error(w, "", http.StatusBadRequest)
			return
		}
		if !f.noTTLHeader {
			w.Header().Set("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", ttl)
		}
		io.WriteString(w, imdsToken)
	case strings.HasPrefix(r.URL.Path, "/latest/meta-data/") && r.Method == http.MethodGet:
		if r.Header.Get("X-aws-ec2-metadata-token") != imdsToken {
			http.Error(w, "", http.StatusUnauthorized)
			return
		}
		body, ok := f.meta[strings.TrimPrefix(r.URL.Path, "/latest/meta-data/")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, body)
	default:
		http.Error(w, "", http.StatusMethodNotAllowed)
	}
}

const testMAC = "0e:11:22:33:44:55"

// instanceMeta is a node in subnet-0priv of vpc-0abc (10.0.0.0/16), us-east-1.
func instanceMeta() map[string]string {
	eni := "network/interfaces/macs/" + testMAC + "/"
	return map[string]string{
		"placement/region":           "us-east-1",
		"instance-id":                "i-0abc123",
		"mac":                        testMAC,
		"network/interfaces/macs/":   testMAC + "/",
		eni + "subnet-id":            "subnet-0priv",
		eni + "vpc-id":               "vpc-0abc",
		eni + "vpc-ipv4-cidr-blocks": "10.0.0.0/16",
		eni + "local-ipv4s":          "10.0.1.5",
	}
}

func addIPv6(meta map[string]string) {
	eni := "network/interfaces/macs/" + testMAC + "/"
	meta[eni+"vpc-ipv6-cidr-blocks"] = "2600:1f18:aaaa:bb00::/56"
	meta[eni+"ipv6s"] = "2600:1f18:aaaa:bb01::10"
}

// fakeEC2 answers the EC2 Query API actions preflight uses.
type fakeEC2 struct {
	tables    []fakeTable
	lists     []fakeList
	endpoints []fakeEndpoint
	enis      []fakeENI
	deny      map[string]bool // action → 403 UnauthorizedOperation
	page      int             // items per page for every list answer; 0 = all at once

	mu    sync.Mutex
	calls []string // actions, in order
}

type fakeTable struct {
	id, vpc string
	main    bool
	subnets []string
	routes  []string // <item> elements, see route()
}

type fakeList struct {
	id, name, family string
	cidrs            []string
}

type fakeEndpoint struct {
	id, typ, service, state, policy string
	routeTables, enis               []string
}

type fakeENI struct {
	id   string
	ipv4 []string
	ipv6 []string
}

// route renders one <item> of a routeSet. dest is a CIDR (IPv4 or IPv6) or a
// pl- id; field names the target element (gatewayId, natGatewayId, …).
func route(dest, field, target string) string {
	return routeFull(dest, field, target, "active", "CreateRoute")
}

func routeFull(dest, field, target, state, origin string) string {
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

func (f *fakeIMDS) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func (f *fakeEC2) total() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

func (f *fakeEC2) called(action string) int {
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

func (f *fakeEC2) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.ParseForm() != nil {
		http.Error(w, "", http.StatusBadRequest)
		return
	}
	form := r.PostForm
	action := form.Get("Action")
	f.mu.Lock()
	f.calls = append(f.calls, action)
	f.mu.Unlock()
	if f.deny[action] {
		ec2Err(w, http.StatusForbidden, "UnauthorizedOperation", "You are not authorized to perform this operation. User: arn:aws:sts::111122223333:assumed-role/node/i-0abc123 is not authorized to perform: ec2:"+action)
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
		for _, c := range l.cidrs {
			items = append(items, "<item><cidr>"+c+"</cidr></item>")
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
func (f *fakeEC2) reply(w http.ResponseWriter, form url.Values, action, set string, items []string) {
	start, _ := strconv.Atoi(form.Get("NextToken"))
	size := len(items) - start
	if f.page > 0 && f.page < size {
		size = f.page
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

func (f *fakeEC2) routeTables(fs map[string][]string) []string {
	var items []string
	for _, t := range f.tables {
		if !match(fs, "vpc-id", t.vpc) || !match(fs, "association.subnet-id", t.subnets...) ||
			!match(fs, "association.main", strconv.FormatBool(t.main)) {
			continue
		}
		var assoc strings.Builder
		if t.main {
			fmt.Fprintf(&assoc, "<item><routeTableAssociationId>rtbassoc-main</routeTableAssociationId><routeTableId>%s</routeTableId><main>true</main><associationState><state>associated</state></associationState></item>", t.id)
		}
		for i, s := range t.subnets {
			fmt.Fprintf(&assoc, "<item><routeTableAssociationId>rtbassoc-%d</routeTableAssociationId><routeTableId>%s</routeTableId><subnetId>%s</subnetId><main>false</main><associationState><state>associated</state></associationState></item>", i, t.id, s)
		}
		items = append(items, fmt.Sprintf("<item><routeTableId>%s</routeTableId><vpcId>%s</vpcId><ownerId>111122223333</ownerId><routeSet>%s</routeSet><associationSet>%s</associationSet><tagSet/></item>",
			t.id, t.vpc, strings.Join(t.routes, ""), assoc.String()))
	}
	return items
}

func (f *fakeEC2) list(id string) (fakeList, bool) {
	for _, l := range f.lists {
		if l.id == id {
			return l, true
		}
	}
	return fakeList{}, false
}

func (f *fakeEC2) managedLists(form url.Values) []string {
	fs := filters(form)
	ids := flatList(form, "PrefixListId")
	var items []string
	for _, l := range f.lists {
		if (len(ids) > 0 && !match(map[string][]string{"id": ids}, "id", l.id)) || !match(fs, "prefix-list-name", l.name) {
			continue
		}
		owner := "111122223333"
		if strings.HasPrefix(l.name, "com.amazonaws.") {
			owner = "AWS"
		}
		items = append(items, fmt.Sprintf("<item><prefixListId>%s</prefixListId><addressFamily>%s</addressFamily><state>create-complete</state><prefixListArn>arn:aws:ec2:us-east-1:aws:prefix-list/%s</prefixListArn><prefixListName>%s</prefixListName><maxEntries>%d</maxEntries><version>1</version><ownerId>%s</ownerId></item>",
			l.id, l.family, l.id, l.name, len(l.cidrs), owner))
	}
	return items
}

func (f *fakeEC2) vpcEndpoints(fs map[string][]string) []string {
	var items []string
	for _, e := range f.endpoints {
		if !match(fs, "vpc-id", "vpc-0abc") || !match(fs, "service-name", e.service) || !match(fs, "vpc-endpoint-type", e.typ) {
			continue
		}
		var rts, enis strings.Builder
		for _, r := range e.routeTables {
			fmt.Fprintf(&rts, "<item>%s</item>", r)
		}
		for _, n := range e.enis {
			fmt.Fprintf(&enis, "<item>%s</item>", n)
		}
		items = append(items, fmt.Sprintf("<item><vpcEndpointId>%s</vpcEndpointId><vpcEndpointType>%s</vpcEndpointType><vpcId>vpc-0abc</vpcId><serviceName>%s</serviceName><state>%s</state><policyDocument>%s</policyDocument><routeTableIdSet>%s</routeTableIdSet><subnetIdSet/><networkInterfaceIdSet>%s</networkInterfaceIdSet><privateDnsEnabled>%t</privateDnsEnabled><ipAddressType>ipv4</ipAddressType><requesterManaged>false</requesterManaged><ownerId>111122223333</ownerId></item>",
			e.id, e.typ, e.service, e.state, x(e.policy), rts.String(), enis.String(), e.typ == "Interface"))
	}
	return items
}

func (f *fakeEC2) networkInterfaces(ids []string) []string {
	var items []string
	for _, n := range f.enis {
		if len(ids) > 0 && !match(map[string][]string{"id": ids}, "id", n.id) {
			continue
		}
		var v4, v6 strings.Builder
		for i, a := range n.ipv4 {
			fmt.Fprintf(&v4, "<item><privateIpAddress>%s</privateIpAddress><primary>%t</primary></item>", a, i == 0)
		}
		for _, a := range n.ipv6 {
			fmt.Fprintf(&v6, "<item><ipv6Address>%s</ipv6Address><isPrimaryIpv6>false</isPrimaryIpv6></item>", a)
		}
		items = append(items, fmt.Sprintf("<item><networkInterfaceId>%s</networkInterfaceId><subnetId>subnet-0priv</subnetId><vpcId>vpc-0abc</vpcId><interfaceType>vpc_endpoint</interfaceType><requesterManaged>true</requesterManaged><description>VPC Endpoint Interface</description><status>in-use</status><privateIpAddress>%s</privateIpAddress><privateIpAddressesSet>%s</privateIpAddressesSet><ipv6AddressesSet>%s</ipv6AddressesSet></item>",
			n.id, n.ipv4[0], v4.String(), v6.String()))
	}
	return items
}
