package backup

import (
	"context"
	"testing"
	"time"

	"github.com/s3bak/s3bak/pkg/catalog"
	"github.com/s3bak/s3bak/pkg/faultproxy"
)

// TestBackupRidesOutAMinuteOfOutage: S3 down for 60 s in the middle of a
// backup (every connection closed, the port refusing) used to fail it with
// "exceeded maximum number of attempts" or "retry quota exceeded" within
// seconds. With the retries sized for minutes the backup completes, and
// its manifest is written once S3 is back.
func TestBackupRidesOutAMinuteOfOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("takes a minute: the outage is real time")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	p, c := proxied(t)
	// The outage starts at the fifth data upload, with uploads in flight.
	down := p.Add(faultproxy.Rule{Match: faultproxy.Request("PUT", "/data/"), After: 4, Times: 1, Fault: faultproxy.Outage(60 * time.Second)})
	set := writeSet(t, 3, 3<<20, 40)
	e, _, _ := engine(t, "outage", nil, 2, 8)
	e.via(c)
	e.opts.PackSize = NoPacking
	start := time.Now()
	res, err := e.RunLocked(ctx, set, SessionOptions{})
	if err != nil {
		t.Fatalf("backup through a 60 s outage: %v", err)
	}
	if down.Applied() != 1 {
		t.Fatalf("the outage was applied %d times", down.Applied())
	}
	if took := time.Since(start); took < 60*time.Second {
		t.Fatalf("finished in %s: the outage did not happen mid-run", took)
	}
	if _, err := catalog.Load(ctx, client, e.opts.Node, res.Manifest.ID); err != nil {
		t.Fatalf("manifest of the backup: %v", err)
	}
}
