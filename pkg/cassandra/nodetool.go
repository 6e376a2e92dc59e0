package cassandra

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"
)

// DefaultNodetoolTimeout bounds one nodetool call: `nodetool snapshot`
// flushes every memtable first, which takes minutes on a busy node.
const DefaultNodetoolTimeout = 15 * time.Minute

// maxNodetoolOutput bounds the output of a call kept in memory (its
// error message and stack trace fit many times over).
const maxNodetoolOutput = 64 << 10

// ErrNodetool marks a nodetool call that failed: it could not start, it
// exited non-zero, or it ran past its timeout.
var ErrNodetool = errors.New("nodetool failed")

// Nodetool runs Cassandra's nodetool: the one place s3bak calls it.
type Nodetool struct {
	// Command is the program and its fixed arguments (host, port, user,
	// password file), as SplitCommand makes it from --nodetool; empty is
	// "nodetool" from PATH.
	Command []string
	// Timeout bounds each call (0: DefaultNodetoolTimeout).
	Timeout time.Duration
	// MaxOutput bounds the standard output kept of a call (0: 64 KiB);
	// what comes after it is read and dropped.
	MaxOutput int
}

// Run calls nodetool with args after the fixed arguments, and returns its
// standard output. A failure is ErrNodetool and says what nodetool wrote on
// stderr (its "error: …" lines, without the Java stack trace). The fixed
// arguments are never repeated in an error or a log: they may hold
// credentials (-pw).
func (n Nodetool) Run(ctx context.Context, args ...string) (string, error) {
	cmdline := n.Command
	if len(cmdline) == 0 {
		cmdline = []string{"nodetool"}
	}
	timeout := n.Timeout
	if timeout <= 0 {
		timeout = DefaultNodetoolTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c := exec.CommandContext(ctx, cmdline[0], append(cmdline[1:len(cmdline):len(cmdline)], args...)...)
	c.WaitDelay = 5 * time.Second // a child that keeps the pipes open does not hold the run
	stdout, stderr := capped{max: n.MaxOutput}, capped{}
	c.Stdout, c.Stderr = &stdout, &stderr
	err := c.Run()
	what := filepath.Base(cmdline[0]) + " " + strings.Join(args, " ")
	if err == nil {
		return stdout.String(), nil
	}
	if ctx.Err() == context.DeadlineExceeded {
		err = fmt.Errorf("no answer after %s (killed)", timeout)
	}
	msg := errorLines(stderr.String())
	if msg == "" {
		msg = errorLines(stdout.String())
	}
	if msg != "" {
		return "", fmt.Errorf("%w: %s: %v: %s", ErrNodetool, what, err, msg)
	}
	return "", fmt.Errorf("%w: %s: %v", ErrNodetool, what, err)
}

// Snapshot takes snapshot tag of every keyspace of the node: Cassandra
// hard-links each table's live sstables into every data directory's
// <keyspace>/<table>-<id>/snapshots/<tag>/, in one call.
func (n Nodetool) Snapshot(ctx context.Context, tag string) error {
	_, err := n.Run(ctx, "snapshot", "-t", tag)
	return err
}

// ClearSnapshot removes snapshot tag of every keyspace.
func (n Nodetool) ClearSnapshot(ctx context.Context, tag string) error {
	_, err := n.Run(ctx, "clearsnapshot", "-t", tag)
	return err
}

// errorLines is what a failed nodetool said, on one line: the text before
// the Java stack trace ("-- StackTrace --"), at most 2,000 bytes.
func errorLines(s string) string {
	s, _, _ = strings.Cut(s, "-- StackTrace --")
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 2000 {
		cut := 2000
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + " …"
	}
	return s
}

// capped keeps the first max bytes written to it (0: maxNodetoolOutput).
// The buffer is a field, not embedded: an embedded bytes.Buffer's ReadFrom
// would be what io.Copy (exec's pipe reader) calls, and it has no bound.
type capped struct {
	buf bytes.Buffer
	max int
}

func (c *capped) Write(p []byte) (int, error) {
	limit := c.max
	if limit <= 0 {
		limit = maxNodetoolOutput
	}
	if room := limit - c.buf.Len(); room > 0 {
		c.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (c *capped) String() string { return c.buf.String() }

// SplitCommand splits a command line the way a POSIX shell splits words,
// without running a shell: blanks separate words, 'single quotes' keep
// everything literally, "double quotes" keep everything but \" \\ \$ \`,
// and a backslash outside quotes keeps the next character. Nothing is
// expanded ($VAR, ~, globs) and operators (|, ;, >) are ordinary characters.
func SplitCommand(s string) ([]string, error) {
	var words []string
	var w strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch == ' ' || ch == '\t' || ch == '\n':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		case ch == '\\':
			if i+1 < len(s) {
				i++
				if s[i] != '\n' { // a backslash-newline joins lines
					w.WriteByte(s[i])
					inWord = true
				}
			} else {
				return nil, fmt.Errorf("%q: ends with a backslash", s)
			}
		case ch == '\'':
			inWord = true
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return nil, fmt.Errorf("%q: unterminated single quote", s)
			}
			w.WriteString(s[i+1 : i+1+end])
			i += end + 1
		case ch == '"':
			inWord = true
			closed := false
			for i++; i < len(s); i++ {
				if s[i] == '"' {
					closed = true
					break
				}
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`\n", s[i+1]) >= 0 {
					i++
					if s[i] == '\n' {
						continue
					}
				}
				w.WriteByte(s[i])
			}
			if !closed {
				return nil, fmt.Errorf("%q: unterminated double quote", s)
			}
		default:
			inWord = true
			w.WriteByte(ch)
		}
	}
	if inWord {
		words = append(words, w.String())
	}
	if len(words) == 0 {
		return nil, errors.New("empty command")
	}
	return words, nil
}
