package cassandra

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSplitCommand(t *testing.T) {
	for in, want := range map[string][]string{
		"nodetool":                           {"nodetool"},
		"  nodetool  -h 127.0.0.1\t-p 7199 ": {"nodetool", "-h", "127.0.0.1", "-p", "7199"},
		`/opt/cassandra/bin/nodetool -u cassandra --password-file '/etc/my secrets/jmx'`: {"/opt/cassandra/bin/nodetool", "-u", "cassandra", "--password-file", "/etc/my secrets/jmx"},
		`nodetool -pw "a \"b\" \\ $x"`: {"nodetool", "-pw", `a "b" \ $x`},
		`nodetool -pw a\ b\'c`:         {"nodetool", "-pw", `a b'c`},
		`nodetool '' x`:                {"nodetool", "", "x"},
		"nodetool \\\n -h h":           {"nodetool", "-h", "h"},
		`a"b"'c'd`:                     {"abcd"},
		`nodetool | rm ; >x`:           {"nodetool", "|", "rm", ";", ">x"},
	} {
		got, err := SplitCommand(in)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("SplitCommand(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "   ", `nodetool 'x`, `nodetool "x`, `nodetool x\`} {
		if got, err := SplitCommand(in); err == nil {
			t.Errorf("SplitCommand(%q) = %q, want an error", in, got)
		}
	}
}

func TestAutoTag(t *testing.T) {
	now := time.Date(2026, 11, 30, 6, 47, 13, 0, time.FixedZone("CET", 3600))
	for period, want := range map[time.Duration]string{
		24 * time.Hour:   "auto-2026-11-30",
		6 * time.Hour:    "auto-2026-11-30T00", // 05:47 UTC
		time.Hour:        "auto-2026-11-30T05",
		30 * time.Minute: "auto-2026-11-30T0530",
		168 * time.Hour:  "auto-2026-11-30", // a Monday
	} {
		got, err := AutoTag(now, period)
		if err != nil || got != want {
			t.Errorf("AutoTag(%s) = %q, %v; want %q", period, got, err, want)
		}
	}
	// Two nodes at different moments of one period agree.
	a, _ := AutoTag(time.Date(2026, 11, 30, 0, 0, 1, 0, time.UTC), 24*time.Hour)
	b, _ := AutoTag(time.Date(2026, 11, 30, 23, 59, 59, 0, time.UTC), 24*time.Hour)
	if a != b {
		t.Errorf("one day, two tags: %s, %s", a, b)
	}
	for _, p := range []time.Duration{0, -time.Hour, 30 * time.Second, 5 * time.Hour, 36 * time.Hour, 90 * time.Second} {
		if got, err := AutoTag(now, p); err == nil {
			t.Errorf("AutoTag(%s) = %q, want an error", p, got)
		}
	}
}

// script writes an executable shell script and returns its path.
func script(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "nodetool")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestNodetoolRun(t *testing.T) {
	ctx := context.Background()
	echo := script(t, `echo "args: $*"`+"\n")
	out, err := Nodetool{Command: []string{echo, "-h", "127.0.0.1"}}.Run(ctx, "snapshot", "-t", "x")
	if err != nil || out != "args: -h 127.0.0.1 snapshot -t x\n" {
		t.Fatalf("Run = %q, %v", out, err)
	}
	// A failure says what nodetool wrote on stderr, not its stack trace,
	// and not the fixed arguments (a password).
	fail := script(t, `echo "error: Keyspace nope does not exist" >&2
echo "-- StackTrace --" >&2
echo "java.lang.IllegalArgumentException: at org.apache..." >&2
exit 1
`)
	_, err = Nodetool{Command: []string{fail, "-pw", "hunter2"}}.Run(ctx, "snapshot", "-t", "x")
	if !errors.Is(err, ErrNodetool) || !strings.Contains(err.Error(), "error: Keyspace nope does not exist") ||
		strings.Contains(err.Error(), "StackTrace") || strings.Contains(err.Error(), "hunter2") ||
		!strings.Contains(err.Error(), "nodetool snapshot -t x") || !strings.Contains(err.Error(), "exit status 1") {
		t.Fatalf("error: %v", err)
	}
	// A nodetool that hangs is killed after the timeout.
	slow := script(t, "exec sleep 60\n")
	start := time.Now()
	_, err = Nodetool{Command: []string{slow}, Timeout: 200 * time.Millisecond}.Run(ctx, "snapshot")
	if !errors.Is(err, ErrNodetool) || !strings.Contains(err.Error(), "no answer after 200ms") || time.Since(start) > 10*time.Second {
		t.Fatalf("error after %s: %v", time.Since(start), err)
	}
	// A program that is not there.
	_, err = Nodetool{Command: []string{filepath.Join(t.TempDir(), "nodetool")}}.Run(ctx, "snapshot")
	if !errors.Is(err, ErrNodetool) {
		t.Fatalf("error: %v", err)
	}
}
