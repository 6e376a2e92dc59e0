package source

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckRefusesBeforeUpload: a set is checked at discovery, naming the
// file on disk, for what a manifest would refuse only at its end.
func TestCheckRefusesBeforeUpload(t *testing.T) {
	ok := &Set{Files: []File{{Path: "ks/t/a\xff", Dir: filepath.Dir("/d/1"), Name: filepath.Base("/d/1")}, {Path: "ks/t/a\xfe", Dir: filepath.Dir("/d/2"), Name: filepath.Base("/d/2")}, {Path: `ks/t/b\c`, Dir: filepath.Dir("/d/3"), Name: filepath.Base("/d/3")}}}
	err := ok.Check()
	if filepath.Separator == '/' && err != nil {
		t.Fatalf("exact names refused: %v", err)
	}
	for name, tc := range map[string]struct {
		files []File
		want  []string
	}{
		"twice":        {[]File{{Path: "ks/t/a", Dir: filepath.Dir("/d1/a"), Name: filepath.Base("/d1/a")}, {Path: "ks/t/a", Dir: filepath.Dir("/d2/a"), Name: filepath.Base("/d2/a")}}, []string{"/d1/a", "/d2/a"}},
		"file and dir": {[]File{{Path: "ks/t/a", Dir: filepath.Dir("/d1/a"), Name: filepath.Base("/d1/a")}, {Path: "ks/t/a/b", Dir: filepath.Dir("/d2/a/b"), Name: filepath.Base("/d2/a/b")}}, []string{"/d1/a", "/d2/a/b"}},
		"escapes":      {[]File{{Path: "../a", Dir: filepath.Dir("/d1/a"), Name: filepath.Base("/d1/a")}}, []string{"/d1/a", "escapes"}},
	} {
		err := (&Set{Files: tc.files}).Check()
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %v, want it to say %q", name, err, w)
			}
		}
	}
}

// TestFingerprintKeepsExactNames: the index is JSON, so a name that is
// not UTF-8 goes into a fingerprint as base64, and two such names differ.
func TestFingerprintKeepsExactNames(t *testing.T) {
	a, b := File{Path: "ks/t/a\xff", Ino: 1}, File{Path: "ks/t/a\xfe", Ino: 1}
	if fa := a.Fingerprint(); fa == b.Fingerprint() || !strings.HasPrefix(fa, "b64:") {
		t.Fatalf("fingerprints %q %q", fa, b.Fingerprint())
	}
	if f := (File{Path: "ks/t/nb-1-big-Data.db", Ino: 7, Size: 3}).Fingerprint(); f != "nb-1-big-Data.db|7|3|-6795364578871345152|" {
		t.Fatalf("a UTF-8 name's fingerprint changed: %q", f)
	}
}
