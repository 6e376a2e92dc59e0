package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of /proc/<pid>/stat's CPU times (USER_HZ, 100 on
// every Linux this runs on).
const clockTick = 10 * time.Millisecond

// findServer finds the MinIO process serving dir (miniotest does not
// expose it), so that every run can also report the server's CPU time:
// MinIO shares the machine's CPUs with the tool measured.
func findServer(dir string) int {
	data := filepath.Join(dir, "data")
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		args := bytes.Split(bytes.TrimRight(b, "\x00"), []byte{0})
		if len(args) > 2 && string(args[1]) == "server" && string(args[len(args)-1]) == data {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			return pid
		}
	}
	return 0
}

// serverCPU is the user + system time MinIO has used so far; 0 when
// unknown.
func (b *bench) serverCPU() time.Duration {
	if b.serverPID == 0 {
		return 0
	}
	st, err := os.ReadFile("/proc/" + strconv.Itoa(b.serverPID) + "/stat")
	if err != nil {
		return 0
	}
	// Fields after the command, which is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(st, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(st[i+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * clockTick
}
