//go:build linux

package sysprio

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

const helperEnv = "SYSPRIO_TEST_HELPER"

// TestLowerEveryThread runs Lower in a child process: without CAP_SYS_NICE
// it cannot be undone, and the other tests must not run at nice 19.
func TestLowerEveryThread(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperLower$", "-test.v")
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "--- SKIP") {
		t.Skipf("child skipped:\n%s", out)
	}
	if !strings.Contains(string(out), "--- PASS: TestHelperLower") {
		t.Fatalf("the child did not run the check:\n%s", out)
	}
	t.Logf("child:\n%s", out)
}

// TestHelperLower is the child of TestLowerEveryThread. It holds threads
// started before Lower and after it, and checks that all of them run at
// nice 19 and the idle (or lowest best-effort) IO priority.
func TestHelperLower(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		t.Skip("only run as the child of TestLowerEveryThread")
	}
	release := make(chan struct{})
	defer close(release)
	holdThreads(8, release)
	before := mustThreads(t)
	if err := Lower(); err != nil {
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENOSYS) {
			t.Skipf("this sandbox forbids it: %v", err)
		}
		t.Fatal(err)
	}
	// Threads the runtime starts now must inherit the lowered priorities.
	holdThreads(8, release)
	after := mustThreads(t)
	var started int
	for _, tid := range after {
		if !slices.Contains(before, tid) {
			started++
		}
	}
	t.Logf("%d threads before Lower, %d started after it", len(before), started)
	if started == 0 {
		t.Error("no thread was started after Lower; the inheritance is untested")
	}
	for _, tid := range after {
		nice, err := threadNice(tid)
		if err != nil {
			t.Fatal(err)
		}
		io, err := ioprioGet(tid)
		if err != nil {
			t.Fatalf("ioprio_get %d: %v", tid, err)
		}
		if nice != Nice || (io != idleIO && io != lowIO) {
			t.Errorf("thread %d: nice %d, ioprio class %d level %d; want nice %d and idle or best-effort 7",
				tid, nice, io>>ioprioClassShift, io&0xff, Nice)
		}
	}
}

// holdThreads parks n goroutines on threads of their own until release is
// closed, which makes the runtime start new threads for everything else.
func holdThreads(n int, release <-chan struct{}) {
	locked := make(chan struct{})
	for range n {
		go func() {
			runtime.LockOSThread()
			locked <- struct{}{}
			<-release
		}()
	}
	for range n {
		<-locked
	}
}

func mustThreads(t *testing.T) []int {
	t.Helper()
	tids, err := threads()
	if err != nil {
		t.Fatal(err)
	}
	return tids
}

// threadNice reads field 19 of /proc/self/task/<tid>/stat. The fields are
// counted after the command name, which is in parentheses and may hold
// spaces.
func threadNice(tid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/stat", tid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	const niceField = 19 - 3 // fields[0] is field 3, the state
	if len(fields) <= niceField {
		return 0, fmt.Errorf("thread %d: short stat line %q", tid, s)
	}
	return strconv.Atoi(fields[niceField])
}

func ioprioGet(tid int) (int, error) {
	r, _, errno := unix.Syscall(unix.SYS_IOPRIO_GET, ioprioWhoProcess, uintptr(tid), 0)
	if errno != 0 {
		return 0, errno
	}
	return int(r), nil
}
