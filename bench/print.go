package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// printSection prints a section as a markdown table.
func printSection(w io.Writer, s *section) {
	if s.Layout == "files" {
		fmt.Fprintf(w, "\n## %s\n\n", s.Title)
	} else {
		fmt.Fprintf(w, "\n## %s\n\n%d files, %s raw\n\n", s.Title, s.Files, human(s.RawBytes))
	}
	switch s.Layout {
	case "files":
		printFiles(w, s)
	case "incremental":
		printIncremental(w, s)
	case "list":
		printList(w, s)
	default:
		printTransfer(w, s)
	}
	for _, n := range s.Notes {
		fmt.Fprintf(w, "\n- %s", n)
	}
	if len(s.Notes) > 0 {
		fmt.Fprintln(w)
	}
}

// printTransfer prints the transfer table; the network section's has the
// proxy's columns too.
func printTransfer(w io.Writer, s *section) {
	net := s.Layout == "network"
	head, rule := "| tool | median wall s | MB/s | peak RSS MiB | s3bak ÷ peer (MB/s) | stored MB | CPU s | MinIO CPU s | steal % |",
		"|---|---:|---:|---:|---:|---:|---:|---:|---:|"
	if net {
		head, rule = head+" proxy CPU s | requests / conns |", rule+"---:|---:|"
	}
	fmt.Fprintln(w, head)
	fmt.Fprintln(w, rule)
	blank := " | | | | | | |"
	if net {
		blank += " | |"
	}
	for _, r := range s.Rows {
		if bad := r.problem(); bad != "" {
			fmt.Fprintf(w, "| %s | %s |%s\n", cell(r.Tool), bad, blank)
			continue
		}
		fmt.Fprintf(w, "| %s | %.2f | %.1f | %.0f | %s | %s | %.1f | %.1f | %s |", cell(r.Tool), r.MedianWallS, r.MBps, r.PeakRSSMiB,
			ratio(r.Ratio), mb(r.StoredBytes), r.MedianCPUS, r.MedianSrvS, pct(r.MedianSteal))
		if net {
			last := r.Runs[len(r.Runs)-1]
			fmt.Fprintf(w, " %.2f | %d / %d |", r.MedianProxy, last.Requests, last.Conns)
		}
		fmt.Fprintln(w)
	}
}

func printIncremental(w io.Writer, s *section) {
	fmt.Fprintln(w, "| s3bak backup | median wall s | MB/s (raw) | peak RSS MiB | files | uploaded contents | uploaded MB | reused | not read |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range s.Rows {
		if bad := r.problem(); bad != "" {
			fmt.Fprintf(w, "| %s | %s | | | | | | | |\n", r.Tool, bad)
			continue
		}
		i := r.Info
		fmt.Fprintf(w, "| %s | %.2f | %.1f | %.0f | %v | %v | %s | %v | %v |\n", r.Tool, r.MedianWallS, r.MBps, r.PeakRSSMiB,
			i["files"], i["uploaded_objects"], mb(toInt(i["uploaded_bytes"])), i["reused"], i["unread"])
	}
}

func printList(w io.Writer, s *section) {
	fmt.Fprintln(w, "| s3bak command | median wall s | peak RSS MiB | backups |")
	fmt.Fprintln(w, "|---|---:|---:|---:|")
	for _, r := range s.Rows {
		if bad := r.problem(); bad != "" {
			fmt.Fprintf(w, "| %s | %s | | |\n", r.Tool, bad)
			continue
		}
		backups := ""
		if n, ok := r.Info["backups"]; ok {
			backups = fmt.Sprint(n)
		}
		fmt.Fprintf(w, "| %s | %.2f | %.0f | %s |\n", r.Tool, r.MedianWallS, r.PeakRSSMiB, backups)
	}
}

// printFiles prints one line per file count, the shape of issue #14's
// table: each command's median wall time and peak RSS.
func printFiles(w io.Writer, s *section) {
	fmt.Fprintln(w, "| files | backup | backup files/s | 2nd backup, unchanged | 2nd: unread files / bytes read | "+
		"list (100 backups) | restore | restore files/s | verify | verify --deep | index rebuild | purge (keep 1) | catalog bytes/file |")
	fmt.Fprintln(w, "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
	var counts []int
	for _, r := range s.Rows {
		if !slices.Contains(counts, r.Files) {
			counts = append(counts, r.Files)
		}
	}
	for _, n := range counts {
		cells := []string{fmt.Sprint(n)}
		wallRSS := func(op string) string {
			r := s.findFiles(n, op)
			if r == nil {
				return ""
			}
			if bad := r.problem(); bad != "" {
				return bad
			}
			return fmt.Sprintf("%.2f s / %.0f MiB", r.MedianWallS, r.PeakRSSMiB)
		}
		perS := func(op string) string {
			if r := s.findFiles(n, op); r != nil && r.Info["files_per_s"] != nil {
				v := r.Info["files_per_s"]
				return fmt.Sprintf("%.0f", v)
			}
			return ""
		}
		unread := ""
		if r := s.findFiles(n, "again"); r != nil && r.Info != nil {
			unread = fmt.Sprintf("%v / %v", r.Info["unread_files"], r.Info["read_bytes"])
		}
		catalog := ""
		if r := s.findFiles(n, "backup"); r != nil && r.Info["catalog_bytes_per_file"] != nil {
			catalog = fmt.Sprint(r.Info["catalog_bytes_per_file"])
		}
		cells = append(cells, wallRSS("backup"), perS("backup"), wallRSS("again"), unread, wallRSS("list"),
			wallRSS("restore"), perS("restore"), wallRSS("verify"), wallRSS("deep"), wallRSS("rebuild"), wallRSS("purge"), catalog)
		fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
	}
}

// problem is what to print instead of numbers: the failure, or why the row
// was skipped.
func (r *row) problem() string {
	switch {
	case r.Error != "":
		return "**FAILED**: " + oneLine(r.Error, 200)
	case r.Skipped != "":
		return "skipped: " + r.Skipped
	case len(r.Runs) == 0:
		return "not run"
	}
	return ""
}

func ratio(x float64) string {
	if x == 0 {
		return ""
	}
	return fmt.Sprintf("%.2f×", x)
}

func mb(b int64) string {
	if b == 0 {
		return ""
	}
	return fmt.Sprintf("%.1f", float64(b)/1e6)
}

func human(b int64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	}
	return fmt.Sprintf("%.1f KiB", float64(b)/(1<<10))
}

// cell escapes the pipes of a tool name for a markdown table.
func cell(s string) string { return strings.ReplaceAll(s, "|", "\\|") }

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	s = strings.ReplaceAll(s, "|", "\\|")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}

func toInt(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case int:
		return int64(x)
	case float64:
		return int64(x)
	}
	return 0
}

// pct is a percentage cell; blank when unknown (negative).
func pct(v float64) string {
	if v < 0 {
		return ""
	}
	return fmt.Sprintf("%.0f", v)
}

// stealNote tells, after a round's time, how much of the machine's CPU
// time the host took meanwhile, when it took any worth telling.
func stealNote(m *measure) string {
	if m.steal < 1 {
		return ""
	}
	return fmt.Sprintf(", steal %.0f%%", m.steal)
}
