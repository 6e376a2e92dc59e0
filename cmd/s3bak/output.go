package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/s3bak/s3bak/pkg/cassandra"
)

// checkOutput validates an --output value: a table for people, JSON for
// programs.
func checkOutput(s string) error {
	if s != "table" && s != "json" {
		return &usageError{fmt.Errorf("--output %q: want table or json", s)}
	}
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// backupOutput is backup's summary with --output json.
type backupOutput struct {
	Cluster         string    `json:"cluster"`
	Node            string    `json:"node"`
	Kind            string    `json:"kind"`
	Tag             string    `json:"tag"`
	BackupID        string    `json:"backup_id"`
	Started         time.Time `json:"started"`
	DurationSeconds float64   `json:"duration_seconds"`
	Files           int       `json:"files"`
	RawBytes        int64     `json:"raw_bytes"`
	ReadBytes       int64     `json:"read_bytes"` // raw bytes read: files known by fingerprint are not
	StoredBytes     int64     `json:"stored_bytes"`
	Uploaded        int       `json:"uploaded_contents"` // contents stored by this run
	UploadedBytes   int64     `json:"uploaded_bytes"`
	Packs           int       `json:"packs"`
	Reused          int       `json:"reused_files"` // files whose content was already stored
	Duplicates      int       `json:"duplicate_files"`
	Unread          int       `json:"unread_files"` // known by fingerprint, not read
	Manifest        string    `json:"manifest_key"`
	Tool            string    `json:"tool"`
	// AlreadyBackedUp: the node had a complete backup of the tag, which
	// the fields describe; this run made none (see --again).
	AlreadyBackedUp bool `json:"already_backed_up,omitempty"`
}

// restoreOutput is restore's summary with --output json.
type restoreOutput struct {
	Cluster         string  `json:"cluster"`
	Node            string  `json:"node"`
	Kind            string  `json:"kind"`
	Tag             string  `json:"tag"`
	BackupID        string  `json:"backup_id"`
	Target          string  `json:"target"`
	DurationSeconds float64 `json:"duration_seconds"`
	Files           int     `json:"files"`
	Bytes           int64   `json:"bytes"`
	LoadSteps       string  `json:"load_steps,omitempty"` // what to run to load the files
	// Topology is what the backup recorded of its node (backup --topology),
	// with every token: a replacement host's initial_token.
	Topology *cassandra.Topology `json:"topology,omitempty"`
	// TableDirs (--into-data-dirs): each table directory of the backup →
	// the live directory it was restored into.
	TableDirs map[string]string `json:"table_dirs,omitempty"`
	// LoadScript is the script written by --load-script.
	LoadScript string `json:"load_script,omitempty"`

	tables []cassandra.TableDir // restored, for restore --all-nodes --load-script
}

// verifyOutput is verify's summary with --output json. OK is false when
// anything failed verification.
type verifyOutput struct {
	Cluster         string          `json:"cluster"`
	Node            string          `json:"node"`
	Tag             string          `json:"tag"`
	BackupID        string          `json:"backup_id"`
	Deep            bool            `json:"deep"`
	DurationSeconds float64         `json:"duration_seconds"`
	Files           int             `json:"files"`
	Objects         int             `json:"objects"` // stored contents checked
	Bytes           int64           `json:"bytes"`   // stored bytes checked (deep: downloaded)
	Problems        []verifyProblem `json:"problems"`
	Catalog         *catalogOutput  `json:"catalog,omitempty"`   // unless --skip-catalog
	Retention       *retentionCheck `json:"retention,omitempty"` // on an Object Lock bucket (see retention.go)
	OK              bool            `json:"ok"`
}

type verifyProblem struct {
	Path  string `json:"path"`
	Error string `json:"error"`
}

// catalogOutput is verify's check of every backup of the node.
type catalogOutput struct {
	Backups           int                 `json:"backups"`
	Objects           int                 `json:"objects"`
	Missing           map[string][]string `json:"missing"` // backup id → keys it references that are gone
	Orphans           int                 `json:"orphans"`
	OrphanBytes       int64               `json:"orphan_bytes"`
	UnfinishedUploads int                 `json:"unfinished_uploads"`
}

// durationHandler adds the run's duration to the records that say a
// command is complete.
type durationHandler struct {
	slog.Handler
	start time.Time
}

func (h durationHandler) Handle(ctx context.Context, r slog.Record) error {
	if strings.HasSuffix(r.Message, " complete") {
		r = r.Clone()
		r.AddAttrs(slog.Float64("duration_seconds", time.Since(h.start).Seconds()))
	}
	return h.Handler.Handle(ctx, r)
}

func (h durationHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return durationHandler{h.Handler.WithAttrs(as), h.start}
}

func (h durationHandler) WithGroup(name string) slog.Handler {
	return durationHandler{h.Handler.WithGroup(name), h.start}
}

// runLogger is the logger of a run about one backup: its records carry
// cluster, node and tag (and id when known), and the "… complete" record
// the run's duration.
func (g *globalOptions) runLogger(start time.Time, args ...any) *slog.Logger {
	return slog.New(durationHandler{g.logger.Handler(), start}).With(args...)
}
