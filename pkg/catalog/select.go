package catalog

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/s3bak/s3bak/pkg/manifest"
	"github.com/s3bak/s3bak/pkg/transfer"
)

// maxTagsNamed bounds the tags an unknown-tag error lists.
const maxTagsNamed = 20

// Select names the backup of node a command works on: id when tag is ""
// (the newest when id is "" or "latest", as Load reads it), else the
// node's newest complete backup of that tag. A tag the node has no
// complete backup of is ErrNoBackup, with the tags it has, newest first.
func Select(ctx context.Context, c *transfer.Client, node manifest.Node, id, tag string) (string, error) {
	if tag == "" {
		return id, nil
	}
	list, err := List(ctx, c, []manifest.Node{node})
	if err != nil {
		return "", err
	}
	ids := TagIDs(list, tag)
	if len(ids) == 0 {
		return "", UnknownTag("node "+node.Name, tag, list)
	}
	return ids[len(ids)-1], nil
}

// TagIDs are the ids of the complete backups of tag in list, oldest first.
func TagIDs(list []Summary, tag string) []string {
	var ids []string
	for _, s := range list {
		if s.Status == Complete && s.Tag == tag {
			ids = append(ids, s.ID)
		}
	}
	slices.Sort(ids)
	return ids
}

// Tags are the tags of the complete backups in list, each once, newest
// first (by its newest backup).
func Tags(list []Summary) []string {
	newest := map[string]string{}
	for _, s := range list {
		if s.Status == Complete && s.ID > newest[s.Tag] {
			newest[s.Tag] = s.ID
		}
	}
	tags := make([]string, 0, len(newest))
	for t := range newest {
		tags = append(tags, t)
	}
	slices.SortFunc(tags, func(a, b string) int {
		if c := strings.Compare(newest[b], newest[a]); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	return tags
}

// notFound is an ErrNoBackup with a message of its own.
type notFound struct{ msg string }

func (e *notFound) Error() string { return e.msg }
func (e *notFound) Unwrap() error { return ErrNoBackup }

// UnknownTag is the error for a tag that no complete backup in list has:
// ErrNoBackup, naming the tags there are (at most 20, newest first). where
// is "node NAME" or "cluster NAME".
func UnknownTag(where, tag string, list []Summary) error {
	tags := Tags(list)
	if len(tags) == 0 {
		return &notFound{fmt.Sprintf("no complete backup of tag %q on %s: it has no complete backup at all", tag, where)}
	}
	named := tags
	more := ""
	if len(named) > maxTagsNamed {
		named, more = named[:maxTagsNamed], fmt.Sprintf(" and %d more (see s3bak list)", len(tags)-maxTagsNamed)
	}
	for i, t := range named {
		if t == "" {
			named[i] = `""`
		}
	}
	return &notFound{fmt.Sprintf("no complete backup of tag %q on %s; tags: %s%s", tag, where, strings.Join(named, ", "), more)}
}
