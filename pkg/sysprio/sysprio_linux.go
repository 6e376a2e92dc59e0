//go:build linux

package sysprio

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// From linux/ioprio.h: x/sys/unix has the syscall numbers but not these.
const (
	ioprioWhoProcess = 1 // "process" means one thread: it takes a thread id
	ioprioClassShift = 13
	ioprioClassBE    = 2
	ioprioClassIdle  = 3
)

var (
	// idleIO gets the disk only when no one else wants it.
	idleIO = ioprioClassIdle << ioprioClassShift
	// lowIO, best effort at the lowest level, is the fallback for kernels
	// or sandboxes that refuse the idle class to unprivileged processes.
	lowIO = ioprioClassBE<<ioprioClassShift | 7
)

// maxPasses bounds the rescans of /proc/self/task. One pass nearly always
// suffices; the bound only keeps Lower from chasing a program that starts
// and ends threads without pause.
const maxPasses = 10

// Lower sets nice 19 and the idle IO class (or best effort level 7 when idle
// is refused) on every thread of the process. It is irreversible without
// CAP_SYS_NICE.
//
// On Linux both priorities belong to a thread: setpriority and ioprio_set
// with who=0 change only the calling thread, and the Go runtime runs
// goroutines on many threads. So Lower changes each thread listed in
// /proc/self/task. A thread started later copies both values from the thread
// that starts it (clone copies the nice value, and the IO priority unless
// CLONE_IO, which Go does not use), so once every thread is lowered every
// future one is too. A thread not lowered yet may start one while Lower
// runs, so Lower scans again until a scan finds no thread it has not seen.
//
// An error says what could not be lowered; whatever could be is lowered even
// then, since a container that forbids one (seccomp often blocks ioprio_set)
// may allow the other.
func Lower() error {
	io := idleIO
	var cpuErr, ioErr error
	seen := make(map[int]bool)
	for range maxPasses {
		tids, err := threads()
		if err != nil {
			return err
		}
		fresh := false
		for _, tid := range tids {
			if seen[tid] {
				continue
			}
			seen[tid], fresh = true, true
			if err := setNice(tid); err != nil && cpuErr == nil {
				cpuErr = fmt.Errorf("lower CPU priority (nice %d): %w", Nice, err)
			}
			if err := setIO(tid, &io); err != nil && ioErr == nil {
				ioErr = fmt.Errorf("lower IO priority (ioprio_set): %w", err)
			}
		}
		if !fresh {
			break
		}
	}
	return errors.Join(cpuErr, ioErr)
}

// threads lists the thread ids of this process.
func threads() ([]int, error) {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil, fmt.Errorf("list this process's threads: %w", err)
	}
	tids := make([]int, 0, len(ents))
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, nil
}

// setNice lowers one thread's CPU priority. A thread that ended meanwhile
// needs nothing.
func setNice(tid int) error {
	err := unix.Setpriority(unix.PRIO_PROCESS, tid, Nice)
	if errors.Is(err, unix.ESRCH) {
		return nil
	}
	return err
}

// setIO lowers one thread's IO priority to *io, and switches *io to the
// fallback for this and every later thread when the idle class is refused.
func setIO(tid int, io *int) error {
	err := ioprioSet(tid, *io)
	if errors.Is(err, unix.EPERM) && *io == idleIO {
		*io = lowIO
		err = ioprioSet(tid, *io)
	}
	if errors.Is(err, unix.ESRCH) {
		return nil
	}
	return err
}

func ioprioSet(tid, prio int) error {
	_, _, errno := unix.Syscall(unix.SYS_IOPRIO_SET, ioprioWhoProcess, uintptr(tid), uintptr(prio))
	if errno != 0 {
		return errno
	}
	return nil
}
