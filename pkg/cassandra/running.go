package cassandra

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// DefaultPIDFile is where Cassandra's packages (and cassandra -p) write the
// daemon's pid.
const DefaultPIDFile = "/var/run/cassandra/cassandra.pid"

// DefaultNativeAddress is the CQL native transport's default address.
const DefaultNativeAddress = "127.0.0.1:9042"

// RunningCheck tells whether Cassandra runs on this host, before files are
// put into its data directories: a running node does not see them (it
// lists its sstables at startup) and could write sstables of the same
// names. Empty fields skip their check.
type RunningCheck struct {
	PIDFile       string
	NativeAddress string
	Timeout       time.Duration // of the connection attempt; 1 s when 0
}

// Running returns why Cassandra is taken to be running, or "" when no
// check says so.
func (c RunningCheck) Running() (string, error) {
	if c.PIDFile != "" {
		why, err := pidRunning(c.PIDFile)
		if why != "" || err != nil {
			return why, err
		}
	}
	if c.NativeAddress != "" {
		if c.Timeout <= 0 {
			c.Timeout = time.Second
		}
		conn, err := net.DialTimeout("tcp", c.NativeAddress, c.Timeout)
		if err == nil {
			conn.Close()
			return fmt.Sprintf("its native transport answers on %s", c.NativeAddress), nil
		}
	}
	return "", nil
}

// pidRunning reads a pid file: a live process of that pid is running
// Cassandra (a stale file, left by a crash, names a dead pid).
func pidRunning(file string) (string, error) {
	b, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read Cassandra's pid file (--cassandra-pid-file): %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return "", nil // not a pid: no process to find
	}
	// Signal 0 checks the process exists; EPERM means it does, as
	// another user (cassandra).
	if err := syscall.Kill(pid, 0); err == nil || errors.Is(err, syscall.EPERM) {
		return fmt.Sprintf("process %d of its pid file %s is alive", pid, file), nil
	}
	return "", nil
}
