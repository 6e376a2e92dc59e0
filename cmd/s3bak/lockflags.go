package main

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/s3bak/s3bak/pkg/lock"
)

// lockFlags are shared by the commands that take the node's lock.
type lockFlags struct {
	breakLock bool
	lease     time.Duration
}

func (l *lockFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.BoolVar(&l.breakLock, "break-lock", false, "take the node's lock even though another run holds it (only when that run is known dead)")
	f.DurationVar(&l.lease, "lock-lease", lock.DefaultLease, "how long the node's lock outlives its holder's last renewal")
	_ = f.MarkHidden("lock-lease")
}
