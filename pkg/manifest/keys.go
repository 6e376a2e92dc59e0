package manifest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"path"
	"strings"
	"time"
)

// Layout of a node in the bucket:
//
//	<prefix>/<cluster>/<node>/data/<sha256[:2]>/<sha256>[.c<KiB>k].<zst|raw>  file contents
//	<prefix>/<cluster>/<node>/data/<r[:2]>/u-<r>[.c<KiB>k].<zst|raw>        large files' contents stored in one pass (r random)
//	<prefix>/<cluster>/<node>/data/packs/<random>.pack                 small files' contents, many to an object
//	<prefix>/<cluster>/<node>/backups/<id>.json                       manifests
//	<prefix>/<cluster>/<node>/runs/<start>-<command>.json             run records (pkg/runlog), the last N kept
//	<prefix>/<cluster>/<node>/pending/<id>.json                       markers of backups started and not complete
//	<prefix>/<cluster>/<node>/checkpoints/<id>-<seq>.zst              what a running (or killed) backup has stored so far
//	<prefix>/<cluster>/<node>/checkpoints/partials.json               large files' unfinished multipart uploads
//	<prefix>/<cluster>/<node>/backups.json.zst                        a summary of each complete backup, for list
//	<prefix>/<cluster>/<node>/lock.json                               the node's lock (pkg/lock: lock.Key)
//
// Contents are addressed by their SHA-256, so a file stored once is never
// stored again and equal names with different contents never collide. A
// large file whose size no stored content has cannot be a duplicate; it is
// read once, hashed while it is compressed and uploaded, under a random
// name (UniqueObjectKey): its record in the manifest still holds the
// SHA-256, by which the next backup finds it.
const (
	DataDir        = "data"
	BackupsDir     = "backups"
	RunsDir        = "runs"
	PendingDir     = "pending"
	CheckpointsDir = "checkpoints"
	// SummariesKey holds the summaries of the node's complete backups:
	// what list reads.
	SummariesKey = "backups.json.zst"
	// PartialsKey holds the large files' unfinished multipart uploads.
	PartialsKey = CheckpointsDir + "/partials.json"
	// LegacyIndexKey is the index of s3bak before stream manifests: every
	// content and fingerprint in one object. It is no longer read; purge
	// removes it.
	LegacyIndexKey = "index.json.zst"
)

// PendingKey is the key, relative to the node's root, of backup id's
// pending marker.
func PendingKey(id string) string { return PendingDir + "/" + id + ".json" }

// CheckpointKey is the key, relative to the node's root, of the seq-th
// checkpoint of backup id: the records of the files it stored since the
// one before.
func CheckpointKey(id string, seq int) string {
	return fmt.Sprintf("%s/%s-%06d.zst", CheckpointsDir, id, seq)
}

// CheckpointID returns the backup id of a checkpoint key, relative or not.
func CheckpointID(key string) (string, bool) {
	if path.Base(path.Dir(key)) != CheckpointsDir {
		return "", false
	}
	rest, ok := strings.CutSuffix(path.Base(key), ".zst")
	i := strings.LastIndexByte(rest, '-')
	if !ok || i < 0 {
		return "", false
	}
	id := rest[:i]
	return id, CheckName("backup id", id) == nil
}

// Node locates one node's backups in the bucket.
type Node struct {
	Prefix  string // may be empty
	Cluster string
	Name    string
}

// Root is the node's key prefix, ending in "/".
func (n Node) Root() string {
	return path.Join(n.Prefix, n.Cluster, n.Name) + "/"
}

// ClusterRoot is the cluster's key prefix, ending in "/".
func (n Node) ClusterRoot() string {
	return path.Join(n.Prefix, n.Cluster) + "/"
}

// Validate checks the names that become parts of keys.
func (n Node) Validate() error {
	if err := CheckName("cluster", n.Cluster); err != nil {
		return err
	}
	if err := CheckName("node", n.Name); err != nil {
		return err
	}
	if n.Prefix != "" {
		if strings.HasPrefix(n.Prefix, "/") || strings.Contains(n.Prefix, "..") || strings.Contains(n.Prefix, "//") {
			return fmt.Errorf("prefix %q: want a relative key prefix such as backups/cassandra", n.Prefix)
		}
	}
	return nil
}

// ObjectKey is the key, relative to the node's root, of a content. A
// compressed object's chunk boundaries depend on the chunk size, so it is
// part of the name: re-storing a content with another chunk size never
// replaces an object that older manifests index.
func ObjectKey(sha256Hex string, compressed bool, chunkSize int64) string {
	if !compressed {
		return fmt.Sprintf("%s/%s/%s.raw", DataDir, sha256Hex[:2], sha256Hex)
	}
	return fmt.Sprintf("%s/%s/%s.c%dk.zst", DataDir, sha256Hex[:2], sha256Hex, chunkSize>>10)
}

// UniqueObjectKey is a new random key, relative to the node's root, for a
// content whose SHA-256 is not known before it is stored. A name is never
// reused, so it cannot collide with another content either.
func UniqueObjectKey(compressed bool, chunkSize int64) string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	name := "u-" + hex.EncodeToString(b[:])
	if !compressed {
		return fmt.Sprintf("%s/%s/%s.raw", DataDir, name[2:4], name)
	}
	return fmt.Sprintf("%s/%s/%s.c%dk.zst", DataDir, name[2:4], name, chunkSize>>10)
}

// PacksDir holds the packs: objects that hold many small files' stored
// forms one after the other, so that thousands of sstable components cost
// a few requests and objects instead of one each.
const PacksDir = DataDir + "/packs"

// PackKey is the key, relative to the node's root, of the pack named id (a
// random name: a pack is written once and never replaced).
func PackKey(id string) string { return PacksDir + "/" + id + ".pack" }

// IsPackKey reports whether key names a pack.
func IsPackKey(key string) bool {
	rest, ok := strings.CutPrefix(key, PacksDir+"/")
	return ok && strings.HasSuffix(rest, ".pack") && !strings.Contains(rest, "/")
}

// ManifestKey is the key, relative to the node's root, of a manifest.
func ManifestKey(id string) string { return BackupsDir + "/" + id + ".json" }

// IDFromKey returns the backup id of a manifest key, relative or not.
func IDFromKey(key string) (string, bool) {
	name := path.Base(key)
	id, ok := strings.CutSuffix(name, ".json")
	return id, ok && CheckName("backup id", id) == nil
}

// Backup ids are UTC start times. An id names the millisecond
// ("20261125T020000Z.123"): two backups of a node a moment apart get distinct
// ids. Ids of s3bak before that name the second ("20261125T020000Z"); that
// form is a prefix of the new one, so old and new ids still sort as their
// times do, an old id before every new id of the same second.
const (
	idLayout    = "20060102T150405Z.000"
	idLayoutOld = "20060102T150405Z"
)

// NewID makes a backup id from the start time: ids sort as times do.
func NewID(t time.Time) string { return t.UTC().Format(idLayout) }

// IDTime is the start time an id made by NewID (of this or an older s3bak)
// names; false for an id of another form.
func IDTime(id string) (time.Time, bool) {
	for _, layout := range []string{idLayout, idLayoutOld} {
		if t, err := time.Parse(layout, id); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// RunKey is the key, relative to the node's root, of the record of a run of
// command that started at start: the start's form is a backup id's, so the
// keys of a node's runs sort as their starts do.
func RunKey(start time.Time, command string) string {
	return RunsDir + "/" + NewID(start) + "-" + command + ".json"
}

// IsRunKey reports whether key (relative to the node's root, or not) names
// a run record.
func IsRunKey(key string) bool {
	name := path.Base(key)
	rest, ok := strings.CutSuffix(name, ".json")
	if !ok || path.Base(path.Dir(key)) != RunsDir {
		return false
	}
	id, command, ok := strings.Cut(rest, "-")
	_, isTime := IDTime(id)
	return ok && isTime && command != "" && CheckName("command", command) == nil
}
