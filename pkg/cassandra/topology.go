package cassandra

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// Unknown is recorded for what nodetool could not tell.
const Unknown = "unknown"

// The manifest's Meta keys of a Cassandra backup's topology (issue #16).
// Tokens are comma-separated, as cassandra.yaml's initial_token takes them.
const (
	MetaTokens        = "cassandra.tokens"
	MetaHostID        = "cassandra.host_id"
	MetaDC            = "cassandra.dc"
	MetaRack          = "cassandra.rack"
	MetaClusterName   = "cassandra.cluster_name"
	MetaListenAddress = "cassandra.listen_address"
	MetaVersion       = "cassandra.version"
	// MetaSchema is the output of cqlsh -e 'DESCRIBE SCHEMA', when it ran
	// and is at most MaxSchema bytes.
	MetaSchema = "cassandra.schema"
)

// MaxSchema bounds the CQL schema kept in a manifest: a larger one is not
// kept (each table's schema.cql is in the snapshot anyway).
const MaxSchema = 1 << 20

// DefaultTopologyTimeout bounds each nodetool call that reads the topology
// (they answer from memory, in seconds).
const DefaultTopologyTimeout = 2 * time.Minute

// Topology is what a backup records of its node: what a replacement host
// needs to take its place (initial_token) and what a restore checks.
// A field nodetool could not tell is Unknown (Tokens: nil).
type Topology struct {
	Tokens        []string `json:"tokens,omitempty"`
	HostID        string   `json:"host_id"`
	DC            string   `json:"dc"`
	Rack          string   `json:"rack"`
	ClusterName   string   `json:"cluster_name"`
	ListenAddress string   `json:"listen_address"`
	Version       string   `json:"version"`
}

// infoFields reads `nodetool info`'s "%-23s: %s" lines (Info.java): the
// name padded to 23 characters, a colon, a space and the value.
func infoFields(out string) [][2]string {
	var kv [][2]string
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		kv = append(kv, [2]string{strings.TrimSpace(k), strings.TrimSpace(v)})
	}
	return kv
}

// ParseInfo reads the host id, data center, rack and tokens from the output
// of `nodetool info -T` (Cassandra 3.11 to 5.0: one "Token : T" line per
// token). Without -T a node with more than one token prints "(invoke with
// -T/--tokens to see all N tokens)", and one not joined "(node is not
// joined to the cluster)": no tokens then.
func ParseInfo(out string) Topology {
	var t Topology
	for _, kv := range infoFields(out) {
		switch kv[0] {
		case "ID":
			t.HostID = kv[1]
		case "Data Center":
			t.DC = kv[1]
		case "Rack":
			t.Rack = kv[1]
		case "Token":
			if kv[1] != "" && !strings.HasPrefix(kv[1], "(") {
				t.Tokens = append(t.Tokens, kv[1])
			}
		}
	}
	return t
}

// ParseDescribeCluster reads the cluster name from `nodetool
// describecluster` ("Cluster Information:" then "\tName: NAME").
func ParseDescribeCluster(out string) string {
	for l := range strings.Lines(out) {
		if name, ok := strings.CutPrefix(strings.TrimSpace(l), "Name:"); ok {
			return strings.TrimSpace(name)
		}
	}
	return ""
}

// ParseVersion reads `nodetool version` ("ReleaseVersion: 4.1.7").
func ParseVersion(out string) string {
	for l := range strings.Lines(out) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "ReleaseVersion:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// ParseStatus finds the address of the node with hostID in `nodetool
// status`: its row is "UN  ADDRESS  LOAD UNIT  TOKENS  OWNS  HOST-ID  RACK"
// (the state letters, then the address; the host id a column of its own).
func ParseStatus(out, hostID string) string {
	if hostID == "" {
		return ""
	}
	for l := range strings.Lines(out) {
		f := strings.Fields(l)
		if len(f) < 3 || len(f[0]) != 2 || !strings.ContainsRune("UD", rune(f[0][0])) {
			continue
		}
		for _, w := range f[2:] {
			if w == hostID {
				return f[1]
			}
		}
	}
	return ""
}

// maxTopologyOutput bounds what is kept of a topology call's output: the
// status of a cluster of thousands of nodes (a line each) fits.
const maxTopologyOutput = 8 << 20

// ReadTopology asks nodetool for the node's topology: `info -T` (host id,
// DC, rack, tokens), `status` (the node's address), `describecluster`
// (cluster name) and `version`. What a call cannot tell is Unknown, and
// each failure is in the errors returned: a backup records what it got and
// warns, it never fails for it.
func (n Nodetool) ReadTopology(ctx context.Context) (Topology, []error) {
	var errs []error
	if n.MaxOutput <= 0 {
		n.MaxOutput = maxTopologyOutput
	}
	run := func(args ...string) string {
		out, err := n.Run(ctx, args...)
		if err != nil {
			errs = append(errs, err)
		}
		return out
	}
	t := ParseInfo(run("info", "-T"))
	if t.HostID != "" {
		t.ListenAddress = ParseStatus(run("status"), t.HostID)
	}
	t.ClusterName = ParseDescribeCluster(run("describecluster"))
	t.Version = ParseVersion(run("version"))
	for _, f := range []*string{&t.HostID, &t.DC, &t.Rack, &t.ClusterName, &t.ListenAddress, &t.Version} {
		if *f == "" {
			*f = Unknown
		}
	}
	if len(errs) == 0 && t.HostID == Unknown {
		errs = append(errs, errors.New("nodetool info printed no host ID"))
	}
	return t, errs
}

// Meta is t under the manifest's Meta keys.
func (t Topology) Meta() map[string]string {
	tokens := Unknown
	if len(t.Tokens) > 0 {
		tokens = strings.Join(t.Tokens, ",")
	}
	return map[string]string{
		MetaTokens: tokens, MetaHostID: t.HostID, MetaDC: t.DC, MetaRack: t.Rack,
		MetaClusterName: t.ClusterName, MetaListenAddress: t.ListenAddress, MetaVersion: t.Version,
	}
}

// TopologyFromMeta is the topology a manifest recorded; false for a backup
// that recorded none (HBase, or one made before s3bak recorded it).
func TopologyFromMeta(meta map[string]string) (Topology, bool) {
	tokens, ok := meta[MetaTokens]
	if !ok {
		return Topology{}, false
	}
	t := Topology{HostID: meta[MetaHostID], DC: meta[MetaDC], Rack: meta[MetaRack],
		ClusterName: meta[MetaClusterName], ListenAddress: meta[MetaListenAddress], Version: meta[MetaVersion]}
	if tokens != Unknown && tokens != "" {
		t.Tokens = strings.Split(tokens, ",")
	}
	return t, true
}

// TokenSummary is the count and the first few tokens: "16 tokens (-87…, 72…, …)".
func (t Topology) TokenSummary() string {
	if len(t.Tokens) == 0 {
		return "tokens " + Unknown
	}
	const few = 3
	head := strings.Join(t.Tokens[:min(few, len(t.Tokens))], ", ")
	if len(t.Tokens) > few {
		head += ", …"
	}
	word := "tokens"
	if len(t.Tokens) == 1 {
		word = "token"
	}
	return fmt.Sprintf("%d %s (%s)", len(t.Tokens), word, head)
}

// InitialToken is the cassandra.yaml line that gives a replacement host the
// node's tokens; empty when they are unknown.
func (t Topology) InitialToken() string {
	if len(t.Tokens) == 0 {
		return ""
	}
	return "initial_token: " + strings.Join(t.Tokens, ",")
}

// Describe is the topology on a few lines, for a restore.
func (t Topology) Describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "recorded topology: cluster %s, DC %s, rack %s, host ID %s, address %s, Cassandra %s; %s\n",
		t.ClusterName, t.DC, t.Rack, t.HostID, t.ListenAddress, t.Version, t.TokenSummary())
	if line := t.InitialToken(); line != "" {
		fmt.Fprintf(&b, "a replacement host takes the node's tokens with this line in cassandra.yaml (num_tokens: %d):\n  %s\n", len(t.Tokens), line)
	}
	return b.String()
}

// DescribeSchema runs cqlsh (its command and fixed arguments: host, port,
// user, credentials) with -e 'DESCRIBE SCHEMA' and returns the schema. A
// schema larger than MaxSchema is an error.
func DescribeSchema(ctx context.Context, command []string, timeout time.Duration) (string, error) {
	if len(command) == 0 {
		command = []string{"cqlsh"}
	}
	if timeout <= 0 {
		timeout = DefaultTopologyTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c := exec.CommandContext(ctx, command[0], append(command[1:len(command):len(command)], "-e", "DESCRIBE SCHEMA")...)
	c.WaitDelay = 5 * time.Second
	var stdout limited
	var stderr capped
	stdout.max = MaxSchema
	c.Stdout, c.Stderr = &stdout, &stderr
	err := c.Run()
	if err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			err = fmt.Errorf("no answer after %s (killed)", timeout)
		}
		if msg := errorLines(stderr.String()); msg != "" {
			return "", fmt.Errorf("cqlsh -e 'DESCRIBE SCHEMA': %v: %s", err, msg)
		}
		return "", fmt.Errorf("cqlsh -e 'DESCRIBE SCHEMA': %v", err)
	}
	if stdout.over {
		return "", fmt.Errorf("cqlsh -e 'DESCRIBE SCHEMA': the schema is larger than %d bytes: not kept in the manifest", MaxSchema)
	}
	if strings.TrimSpace(stdout.String()) == "" {
		return "", errors.New("cqlsh -e 'DESCRIBE SCHEMA' printed nothing")
	}
	return stdout.String(), nil
}

// limited keeps up to max bytes and notes whether more came.
type limited struct {
	strings.Builder
	max  int
	over bool
}

func (l *limited) Write(p []byte) (int, error) {
	n, room := len(p), l.max-l.Len()
	if n > room {
		l.over = true
		p = p[:max(room, 0)]
	}
	l.Builder.Write(p)
	return n, nil
}
