package preflight

import (
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"text/tabwriter"
)

// Status is the outcome of one check.
type Status string

const (
	StatusPass Status = "PASS"
	StatusWarn Status = "WARN" // works, but a person should look
	// StatusUnknown means the check could not be made (no IMDS answer, a
	// missing IAM permission): nothing was proven either way.
	StatusUnknown Status = "UNKNOWN"
	StatusFail    Status = "FAIL"
	StatusNA      Status = "N/A" // does not apply here (custom endpoint, prerequisite missing)
)

// severity orders statuses for "worst wins"; N/A counts for nothing.
func (s Status) severity() int {
	switch s {
	case StatusPass:
		return 1
	case StatusWarn:
		return 2
	case StatusUnknown:
		return 3
	case StatusFail:
		return 4
	}
	return 0
}

func worst(a, b Status) Status {
	if b.severity() > a.severity() {
		return b
	}
	return a
}

// Verdict is the overall outcome of a run.
type Verdict string

const (
	VerdictPass    Verdict = "pass"
	VerdictFail    Verdict = "fail"
	VerdictUnknown Verdict = "unknown"
)

// Check IDs, in the order Run reports them.
const (
	CheckCredentials = "credentials"
	CheckIMDS        = "imds"
	CheckBucket      = "bucket"
	CheckPermissions = "permissions"
	CheckRegion      = "region"
	CheckDNS         = "dns"
	CheckRoute       = "route"
	CheckEndpoint    = "endpoint"
	CheckPolicy      = "policy"
	CheckCost        = "cost"
)

// Check is one line of the report.
type Check struct {
	ID     string `json:"id"`
	Status Status `json:"status"`
	Detail string `json:"detail"`
	Hint   string `json:"hint,omitempty"` // what to do about it, when there is something to do
}

// Path is the verdict for one address of the bucket's hostname.
type Path struct {
	Addr   netip.Addr `json:"addr"`
	Route  string     `json:"route,omitempty"`  // winning destination, e.g. "pl-63a5400a (52.216.0.0/15)"
	Target string     `json:"target,omitempty"` // winning target id, e.g. "vpce-0s3", "nat-0123", "local"
	Kind   string     `json:"kind,omitempty"`   // e.g. "gateway-endpoint", "nat-gateway"
	Status Status     `json:"status"`
	Detail string     `json:"detail"`

	routeStatus, endpointStatus Status
	routeMsg, endpointMsg       string
	endpointID                  string // the S3 endpoint carrying this address, if any
	traverses                   bool   // an active route leads to a non-endpoint target (Kind says which)
}

// Facts are what the run learned; a caller (backup runs preflight first) can
// keep the Report and reuse them instead of asking AWS again.
type Facts struct {
	Bucket           string       `json:"bucket"`
	BucketRegion     string       `json:"bucketRegion,omitempty"`
	CredentialSource string       `json:"credentialSource,omitempty"`
	CustomEndpoint   string       `json:"customEndpoint,omitempty"`
	Host             string       `json:"host,omitempty"`
	Addrs            []netip.Addr `json:"addrs,omitempty"`
	InstanceID       string       `json:"instanceId,omitempty"`
	Region           string       `json:"region,omitempty"` // the VPC's region, from IMDS
	SubnetID         string       `json:"subnetId,omitempty"`
	VPCID            string       `json:"vpcId,omitempty"`
	RouteTableID     string       `json:"routeTableId,omitempty"`
	EndpointIDs      []string     `json:"endpointIds,omitempty"` // S3 endpoints that carry the traffic
}

// Report is the result of Run.
type Report struct {
	Verdict Verdict `json:"verdict"`
	Checks  []Check `json:"checks"`
	Paths   []Path  `json:"paths,omitempty"`
	Facts   Facts   `json:"facts"`
}

// Check returns the check with the given ID, or false.
func (r *Report) Check(id string) (Check, bool) {
	for _, c := range r.Checks {
		if c.ID == id {
			return c, true
		}
	}
	return Check{}, false
}

// ExitCode maps the verdict to a process exit code: 0 pass, 1 fail, 2 unknown.
func (r *Report) ExitCode() int {
	switch r.Verdict {
	case VerdictPass:
		return 0
	case VerdictFail:
		return 1
	}
	return 2
}

// verdictOf is the worst check: any FAIL fails, any UNKNOWN leaves the path
// unproven; WARN and N/A do not stop a pass.
func verdictOf(checks []Check) Verdict {
	s := StatusNA
	for _, c := range checks {
		s = worst(s, c.Status)
	}
	switch s {
	case StatusFail:
		return VerdictFail
	case StatusUnknown:
		return VerdictUnknown
	}
	return VerdictPass
}

// WriteJSON writes the report as one indented JSON document.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("preflight: write json: %w", err)
	}
	return nil
}

// WriteTable writes the report for a person: one row per check, hints under
// their check, then one row per address, then the verdict.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tSTATUS\tDETAIL")
	for _, c := range r.Checks {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", c.ID, c.Status, oneLine(c.Detail))
		if c.Hint != "" {
			fmt.Fprintf(tw, "\t\thint: %s\n", oneLine(c.Hint))
		}
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("preflight: write table: %w", err)
	}
	if len(r.Paths) > 0 {
		// A table of its own: addresses and check ids need different widths.
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "\nADDRESS\tSTATUS\tPATH")
		for _, p := range r.Paths {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", p.Addr, p.Status, oneLine(p.Detail))
		}
		if err := tw.Flush(); err != nil {
			return fmt.Errorf("preflight: write table: %w", err)
		}
	}
	if _, err := fmt.Fprintf(w, "\nverdict: %s\n", r.Verdict); err != nil {
		return fmt.Errorf("preflight: write table: %w", err)
	}
	return nil
}

// oneLine keeps a detail on its row: tabs or newlines inside would break the
// table's columns.
func oneLine(s string) string {
	return strings.NewReplacer("\n", " ", "\t", " ").Replace(s)
}
