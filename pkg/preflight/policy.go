package preflight

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
)

// policyDoc is the part of an IAM policy document the policy check reads.
// Principal, Action and Resource may each be a string or a list.
type policyDoc struct {
	Statement statements `json:"Statement"`
}

type statement struct {
	Effect    string          `json:"Effect"`
	Principal json.RawMessage `json:"Principal"`
	Action    stringList      `json:"Action"`
	Resource  stringList      `json:"Resource"`
	Condition json.RawMessage `json:"Condition"`
}

type statements []statement

// UnmarshalJSON accepts a single statement object as well as a list.
func (s *statements) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '{' {
		var one statement
		if err := json.Unmarshal(b, &one); err != nil {
			return err
		}
		*s = statements{one}
		return nil
	}
	return json.Unmarshal(b, (*[]statement)(s))
}

type stringList []string

func (l *stringList) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var one string
		if err := json.Unmarshal(b, &one); err != nil {
			return err
		}
		*l = stringList{one}
		return nil
	}
	return json.Unmarshal(b, (*[]string)(l))
}

// judgePolicy reads one endpoint policy. The default policy lets anyone in
// the VPC reach any bucket through the endpoint: fine for the backup, but a
// person should choose it knowingly. A custom policy is only checked for an
// Allow of s3:PutObject on the bucket's objects; Deny statements and
// conditions are not evaluated.
func judgePolicy(endpointID, doc, bucket, partition string) (Status, string) {
	if doc == "" {
		return StatusWarn, endpointID + ": EC2 returned no policy document"
	}
	// EC2 returns the document as JSON text; tolerate the URL-encoded form
	// IAM APIs use.
	if dec, err := url.QueryUnescape(doc); err == nil && !strings.HasPrefix(strings.TrimSpace(doc), "{") {
		doc = dec
	}
	var p policyDoc
	if err := json.Unmarshal([]byte(doc), &p); err != nil {
		return StatusWarn, fmt.Sprintf("%s: policy document does not parse: %v", endpointID, err)
	}
	if isFullAccess(p) {
		return StatusWarn, endpointID + " has the default full-access policy: any principal in the VPC may reach any bucket through it"
	}
	object := "arn:" + partition + ":s3:::" + bucket + "/snapshot"
	for _, st := range p.Statement {
		if strings.EqualFold(st.Effect, "Allow") && anyMatch(st.Action, "s3:PutObject", true) &&
			anyMatch(st.Resource, object, false) {
			return StatusPass, endpointID + " has a custom policy that allows s3:PutObject on arn:" + partition + ":s3:::" + bucket + "/*"
		}
	}
	return StatusWarn, fmt.Sprintf("%s has a custom policy with no Allow of s3:PutObject on arn:%s:s3:::%s/*: uploads may be denied",
		endpointID, partition, bucket)
}

func isFullAccess(p policyDoc) bool {
	if len(p.Statement) != 1 {
		return false
	}
	st := p.Statement[0]
	var pr any
	_ = json.Unmarshal(st.Principal, &pr)
	anyone := pr == "*"
	if m, ok := pr.(map[string]any); ok && len(m) == 1 {
		anyone = m["AWS"] == "*"
	}
	return strings.EqualFold(st.Effect, "Allow") && anyone && len(st.Condition) == 0 &&
		len(st.Action) == 1 && (st.Action[0] == "*" || strings.EqualFold(st.Action[0], "s3:*")) &&
		len(st.Resource) == 1 && st.Resource[0] == "*"
}

func anyMatch(patterns []string, s string, fold bool) bool {
	for _, p := range patterns {
		if fold {
			p, s = strings.ToLower(p), strings.ToLower(s)
		}
		if wildcardMatch(p, s) {
			return true
		}
	}
	return false
}

// wildcardMatch is IAM's matching: '*' is any run of characters ('/'
// included, unlike path.Match), '?' is any one character.
func wildcardMatch(pattern, s string) bool {
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == s[i]):
			p++
			i++
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case star >= 0:
			p, mark = star+1, mark+1
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// partition names the ARN partition of a region.
func partition(region string) string {
	switch {
	case strings.HasPrefix(region, "cn-"):
		return "aws-cn"
	case strings.HasPrefix(region, "us-gov-"):
		return "aws-us-gov"
	}
	return "aws"
}

// sourceVpceHint is the advice every endpoint policy line carries: through an
// endpoint the caller has no public IP, so aws:SourceIp never matches.
func sourceVpceHint(ids []string, bucket string) string {
	return fmt.Sprintf("to accept writes only via this path, add a bucket policy on %s that denies requests unless aws:SourceVpce is %s (aws:SourceIp never matches through an endpoint)",
		bucket, strings.Join(ids, " or "))
}

// bytesPerGB: AWS bills data processing per GB of 2^30 bytes.
const bytesPerGB = 1 << 30

// natCost is the NAT gateway data-processing charge for estimate bytes.
func natCost(estimate int64, pricePerGB float64) float64 {
	return float64(estimate) / bytesPerGB * pricePerGB
}
