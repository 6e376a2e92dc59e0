package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
)

// copyManifest stores copies of the backup's manifest under older ids,
// one hour apart from 2020-01-01, so that the node has as many backups as
// list is timed with. Each copy is the manifest with its first zstd frame
// (the header line) replaced: id, started and finished rewritten.
func (b *bench) copyManifest(ctx context.Context, bucket string, first *backupOutput, copies int) error {
	local := filepath.Join(b.dir, "manifest.zst")
	defer os.Remove(local)
	bucketURL := "s3://" + bucket + "/"
	if _, err := b.run(ctx, b.s5cmd("cp", bucketURL+first.Manifest, local)); err != nil {
		return err
	}
	body, err := os.ReadFile(local)
	if err != nil {
		return err
	}
	sm, err := parseStreamManifest(body)
	if err != nil || sm.id != first.ID {
		return fmt.Errorf("manifest %s: not a stream manifest of backup %s (%v)", first.Manifest, first.ID, err)
	}
	defer sm.close()
	base := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range copies {
		at := base.Add(time.Duration(i) * time.Hour)
		id := at.Format("20060102T150405Z.000")
		nh, err := sm.header(id, at)
		if err != nil {
			return err
		}
		key := strings.TrimSuffix(first.Manifest, first.ID+".json") + id + ".json"
		c := exec.CommandContext(ctx, b.bin.s5cmd, "--endpoint-url", b.srv.URL, "pipe", bucketURL+key)
		c.Env = b.env
		c.Stdin = io.MultiReader(bytes.NewReader(nh), bytes.NewReader(sm.rest))
		if out, err := c.CombinedOutput(); err != nil {
			return fmt.Errorf("s5cmd pipe %s: %w: %s", key, err, oneLine(string(out), 200))
		}
	}
	return nil
}

// streamManifest is a stored stream manifest (schema 3: zstd frames, the
// first of them the header line), to store copies of under other ids.
type streamManifest struct {
	id                string
	started, finished time.Time
	head              []byte // the header line
	rest              []byte // the stored frames after the header's
	enc               *zstd.Encoder
}

// parseStreamManifest splits a stored manifest into its header and the
// rest; an error when it is not a stream manifest.
func parseStreamManifest(body []byte) (*streamManifest, error) {
	k, err := zstdFrameLen(body)
	if err != nil {
		return nil, err
	}
	dec, err := zstd.NewReader(nil)
	if err != nil {
		return nil, err
	}
	head, err := dec.DecodeAll(body[:k], nil)
	dec.Close()
	if err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	if !bytes.HasPrefix(head, []byte(`{"schema":`)) || bytes.IndexByte(head, '\n') != len(head)-1 {
		return nil, fmt.Errorf("the first zstd frame is not one header line: %s", oneLine(string(head), 200))
	}
	var h struct {
		ID       string    `json:"id"`
		Started  time.Time `json:"started"`
		Finished time.Time `json:"finished"`
	}
	if err := json.Unmarshal(head, &h); err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
	if err != nil {
		return nil, err
	}
	return &streamManifest{id: h.ID, started: h.Started, finished: h.Finished, head: head, rest: body[k:], enc: enc}, nil
}

// header is the first frame of the copy with id, started at (and finished
// as long after as the original).
func (m *streamManifest) header(id string, at time.Time) ([]byte, error) {
	nh, err := rewriteHeader(m.head, map[string][2]any{"id": {m.id, id}, "started": {m.started, at},
		"finished": {m.finished, at.Add(m.finished.Sub(m.started))}})
	if err != nil {
		return nil, err
	}
	return m.enc.EncodeAll(nh, nil), nil
}

func (m *streamManifest) close() { m.enc.Close() }

// rewriteHeader replaces, in a manifest's header line, each field's JSON
// value by another, leaving everything else (the order of the fields, the
// schema first) as it was.
func rewriteHeader(head []byte, fields map[string][2]any) ([]byte, error) {
	for name, v := range fields {
		from, err1 := json.Marshal(v[0])
		to, err2 := json.Marshal(v[1])
		if err := errors.Join(err1, err2); err != nil {
			return nil, err
		}
		old := append([]byte(`"`+name+`":`), from...)
		if bytes.Count(head, old) != 1 {
			return nil, fmt.Errorf("manifest header: %s is not there once: %s", old, oneLine(string(head), 200))
		}
		head = bytes.Replace(head, old, append([]byte(`"`+name+`":`), to...), 1)
	}
	return head, nil
}

// zstdFrameLen is the length of the zstd frame at the start of b (RFC
// 8878: magic, frame header, blocks, optional checksum).
func zstdFrameLen(b []byte) (int, error) {
	if len(b) < 5 || !bytes.Equal(b[:4], []byte{0x28, 0xb5, 0x2f, 0xfd}) {
		return 0, errors.New("not a zstd frame")
	}
	fhd := b[4]
	single := fhd&0x20 != 0
	pos := 5
	if !single {
		pos++ // window descriptor
	}
	pos += []int{0, 1, 2, 4}[fhd&3] // dictionary id
	fcs := []int{0, 2, 4, 8}[fhd>>6]
	if fhd>>6 == 0 && single {
		fcs = 1
	}
	pos += fcs
	for {
		if pos+3 > len(b) {
			return 0, errors.New("zstd frame cut short")
		}
		h := int(b[pos]) | int(b[pos+1])<<8 | int(b[pos+2])<<16
		pos += 3
		switch (h >> 1) & 3 {
		case 0, 2: // raw, compressed
			pos += h >> 3
		case 1: // RLE
			pos++
		default:
			return 0, errors.New("zstd frame: reserved block type")
		}
		if h&1 != 0 {
			break
		}
	}
	if fhd&0x04 != 0 {
		pos += 4 // content checksum
	}
	if pos > len(b) {
		return 0, errors.New("zstd frame cut short")
	}
	return pos, nil
}
