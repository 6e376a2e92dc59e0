//go:build !linux

package sysprio

import (
	"fmt"
	"runtime"
)

// Lower is only implemented for Linux, where s3bak runs in production.
func Lower() error {
	return fmt.Errorf("lowering CPU and IO priority is not supported on %s", runtime.GOOS)
}
