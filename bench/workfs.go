package main

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// workFS describes the file system of the bench's working directory, where
// the trees are generated, MinIO stores and the tools download: "ext4 on
// vda, no journal", "ext4 on loop0, journal", "tmpfs"… A download of
// thousands of files onto ext4 without a journal is measured against the
// file system more than against the tool: there ext4 does not reuse an
// inode freed in the last 60 s (360 s while its inode table block is dirty;
// recently_deleted in fs/ext4/ialloc.c), and steps over each one when it
// creates a file — and the bench frees thousands between runs.
func workFS(dir string) (desc string, noJournal bool) {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return "unknown", false
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		return "unknown", false
	}
	name := blockDevName(st.Dev)
	switch {
	case fs.Type == unix.EXT4_SUPER_MAGIC && name != "":
		if _, err := os.Stat("/proc/fs/jbd2/" + name + "-8"); err == nil {
			return "ext4 on " + name + ", journal", false
		}
		return "ext4 on " + name + ", no journal", true
	case fs.Type == unix.EXT4_SUPER_MAGIC:
		return "ext4", false
	case fs.Type == unix.TMPFS_MAGIC:
		return "tmpfs", false
	case fs.Type == unix.XFS_SUPER_MAGIC:
		return "xfs on " + name, false
	}
	return fmt.Sprintf("file system type %#x on %s", fs.Type, name), false
}

// blockDevName is the kernel's name of the block device dev ("vda",
// "loop0"), or "".
func blockDevName(dev uint64) string {
	b, err := os.ReadFile(fmt.Sprintf("/sys/dev/block/%d:%d/uevent", unix.Major(dev), unix.Minor(dev)))
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "DEVNAME="); ok {
			return v
		}
	}
	return ""
}
