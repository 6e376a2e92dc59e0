package manifest

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unsafe"
)

// TestRecordKeys: the fast decoder's keys are record's JSON keys, in the
// order of its fields (the order json.Marshal writes them), and "end" is
// the only one it leaves to json.Unmarshal.
func TestRecordKeys(t *testing.T) {
	typ := reflect.TypeFor[record]()
	var keys []string
	for i := range typ.NumField() {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
		keys = append(keys, name)
	}
	want := append(recordKeys[:], "end")
	if !reflect.DeepEqual(keys, want) {
		t.Fatalf("record's keys are %q, the fast decoder's %q", keys, want)
	}
}

// decodeSlow is what a record line decoded to before the fast decoder.
func decodeSlow(line []byte) (record, error) {
	var r record
	err := json.Unmarshal(line, &r)
	return r, err
}

// checkRecordDecode checks the fast decoder against json.Unmarshal on
// line, with a fresh decoder and with one that has decoded line before
// (its chunk list and key reused): it declines, or yields exactly the
// record json.Unmarshal does, without error; and decode, with its
// fallback, yields json.Unmarshal's record or its error. It reports
// whether the fast path took the line.
func checkRecordDecode(t *testing.T, line []byte) bool {
	t.Helper()
	want, wantErr := decodeSlow(line)
	var d recordDecoder
	var fast bool
	for pass := range 2 {
		var got record
		ok := d.fast(line, &got)
		if pass == 0 {
			fast = ok
		} else if ok != fast {
			t.Fatalf("%q: fast path took it %v, then %v", line, fast, ok)
		}
		if ok {
			if wantErr != nil {
				t.Fatalf("%q: fast path took a line json.Unmarshal refuses (%v): %+v", line, wantErr, got)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%q: fast path\n got %#v\nwant %#v", line, got, want)
			}
		}
		got = record{Path: "left over", Chunks: []int64{1}}
		err := d.decode(line, &got)
		if fmt.Sprint(err) != fmt.Sprint(wantErr) {
			t.Fatalf("%q: decode: %v, json.Unmarshal: %v", line, err, wantErr)
		}
		if err == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: decode\n got %#v\nwant %#v", line, got, want)
		}
	}
	return fast
}

// recordLines are record lines as AppendRecord writes them, for the
// tests and as fuzz seeds: small packed files, a large chunked one, an
// uncompressed one, names that need escapes or pb.
func recordLines(t testing.TB) [][]byte {
	files := append(benchFiles(8, 0), benchFiles(1, 3)...)
	m := validManifest()
	files = append(files, m.Files...)
	for _, p := range []string{"ks/t-1/a\xff", "ks/t-1/é ü/ß", "ks/t-1/back\\slash", "ks/t-1/\"q\"", "ks/t-1/<&>",
		"ks/t-1/tab\tnl\n", "ks/t-1/\u2028", "ks/\x00"} {
		f := m.Files[1]
		f.Path = p
		files = append(files, f)
	}
	return recordLinesOf(t, files)
}

// recordLinesOf is the record lines of files, without their newlines.
func recordLinesOf(t testing.TB, files []File) [][]byte {
	t.Helper()
	lines := make([][]byte, 0, len(files))
	for i := range files {
		b, err := AppendRecord(nil, &files[i])
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, b[:len(b)-1])
	}
	return lines
}

// TestRecordDecode: lines AppendRecord writes take the fast path unless
// a string needs an escape; every other form a line could take is
// declined and read by json.Unmarshal, so that it means (or fails) as it
// did.
func TestRecordDecode(t *testing.T) {
	for _, line := range recordLines(t) {
		fast := checkRecordDecode(t, line)
		if want := !bytes.Contains(line, []byte(`\`)); fast != want {
			t.Errorf("%s: fast path %v, want %v", line, fast, want)
		}
	}
	sha := strings.Repeat("0f", 32)
	rec := func(fields string) string {
		return `{"p":"ks/t/a","n":10,"t":1700000000000000000,"m":420,"h":"` + sha + `","k":"data/packs/x.pack",` + fields + `}`
	}
	for _, tc := range []struct {
		name, line string
		fast       bool
	}{
		{"canonical", rec(`"o":5,"z":45,"c":"zstd","cs":8388608,"ch":[10,4294967295],"i":7,"d":"123"`), true},
		{"fields left out", `{"p":"a","h":"x"}`, true},
		{"zero values written", rec(`"o":0,"z":0,"c":"","cs":0,"ch":[0,0],"i":0,"d":""`), true},
		{"negative numbers", rec(`"o":-1,"z":-9223372036854775808,"c":"none","ch":[-5,-1]`), true},
		{"largest numbers", rec(`"o":9223372036854775807,"z":1,"c":"x","i":9999999999999999999`), true},
		{"mode at its largest", `{"p":"a","m":4294967295}`, true},
		{"unknown compression", rec(`"z":1,"c":"lz4"`), true},
		{"non-ASCII path", `{"p":"ks/t/é€😀"}`, true},
		{"U+2028 unescaped", "{\"p\":\"a\u2028b\"}", true},
		{"U+FFFD as such", "{\"p\":\"a\uFFFDb\"}", true},
		{"pb", `{"p":"ks/t-1/a` + "\uFFFD" + `","pb":"a3MvdC0xL2H/"}`, true},
		{"pb not base64", `{"p":"a","pb":"%%%"}`, true},

		{"escaped NUL", `{"p":"ks/\u0000"}`, false},
		{"escaped quote", `{"p":"a\"b"}`, false},
		{"escaped backslash", `{"p":"a\\b"}`, false},
		{"escaped slash", `{"p":"a\/b"}`, false},
		{"escaped letter", `{"p":"\u0061"}`, false},
		{"escaped surrogate pair", `{"p":"\ud83d\ude00"}`, false},
		{"lone surrogate", `{"p":"\ud83d"}`, false},
		{"invalid UTF-8", "{\"p\":\"a\xffb\"}", false},
		{"UTF-8 surrogate", "{\"p\":\"a\xed\xa0\x80\"}", false},
		{"overlong UTF-8", "{\"p\":\"\xc0\xaf\"}", false},
		{"cut UTF-8", "{\"p\":\"\xe2\x82\"}", false},
		{"raw tab", "{\"p\":\"a\tb\"}", false},
		{"raw newline", "{\"p\":\"a\nb\"}", false},
		{"raw DEL", "{\"p\":\"a\x7fb\"}", true},
		{"escaped key", `{"\u0070":"a"}`, false},
		{"key with quote", `{"p\"":"a"}`, false},
		{"upper-case key", `{"P":"a"}`, false},
		{"upper-case later key", `{"p":"a","N":5}`, false},
		{"unknown key", `{"p":"a","x":1}`, false},
		{"unknown key last", rec(`"z":1,"c":"zstd","zz":1`), false},
		{"duplicate key", `{"p":"a","p":"b"}`, false},
		{"duplicate number", `{"p":"a","n":1,"n":2}`, false},
		{"duplicate chunks", `{"p":"a","ch":[1,2],"ch":[3,4]}`, false},
		{"keys out of order", `{"n":1,"p":"a"}`, false},
		{"end trailer", `{"end":5}`, false},
		{"end after fields", `{"p":"a","end":5}`, false},
		{"negative end", `{"end":-1}`, false},
		{"empty chunks", `{"p":"a","ch":[]}`, false},
		{"null chunks", `{"p":"a","ch":null}`, false},
		{"null number", `{"p":"a","n":null}`, false},
		{"null string", `{"p":null}`, false},
		{"true", `{"p":"a","n":true}`, false},
		{"string for number", `{"p":"a","n":"5"}`, false},
		{"number for string", `{"p":5}`, false},
		{"object for number", `{"p":"a","n":{}}`, false},
		{"array for number", `{"p":"a","n":[1]}`, false},
		{"string in chunks", `{"p":"a","ch":[1,"2"]}`, false},
		{"nested chunks", `{"p":"a","ch":[[1]]}`, false},
		{"minus zero", `{"p":"a","n":-0}`, false},
		{"minus zero chunk", `{"p":"a","ch":[-0,1]}`, false},
		{"minus alone", `{"p":"a","n":-}`, false},
		{"leading zero", `{"p":"a","n":01}`, false},
		{"plus", `{"p":"a","n":+1}`, false},
		{"fraction", `{"p":"a","n":1.0}`, false},
		{"exponent", `{"p":"a","n":1e3}`, false},
		{"upper exponent", `{"p":"a","ch":[1E3,1]}`, false},
		{"int64 overflow", `{"p":"a","n":9223372036854775808}`, false},
		{"int64 underflow", `{"p":"a","n":-9223372036854775809}`, false},
		{"20 digits", `{"p":"a","n":10000000000000000000}`, false},
		{"many digits", `{"p":"a","t":123456789012345678901234567890}`, false},
		{"uint64 overflow", `{"p":"a","i":18446744073709551616}`, false},
		{"uint64 at 20 digits", `{"p":"a","i":18446744073709551615}`, false},
		{"negative inode", `{"p":"a","i":-1}`, false},
		{"negative mode", `{"p":"a","m":-1}`, false},
		{"mode overflow", `{"p":"a","m":4294967296}`, false},
		{"chunks overflow", `{"p":"a","ch":[1,9223372036854775808]}`, false},
		{"space after colon", `{"p": "a"}`, false},
		{"space after comma", `{"p":"a", "n":1}`, false},
		{"space before brace", `{"p":"a" }`, false},
		{"space in chunks", `{"p":"a","ch":[1, 2]}`, false},
		{"leading space", ` {"p":"a"}`, false},
		{"trailing space", `{"p":"a"} `, false},
		{"trailing comma", `{"p":"a",}`, false},
		{"trailing comma in chunks", `{"p":"a","ch":[1,]}`, false},
		{"chunks not closed", `{"p":"a","ch":[1,2}`, false},
		{"two objects", `{"p":"a"}{"p":"b"}`, false},
		{"after the brace", `{"p":"a"}x`, false},
		{"brace in string", `{"p":"a}`, false},
		{"cut short", `{"p":"a","n":1`, false},
		{"cut in key", `{"p":"a","n`, false},
		{"no colon", `{"p""a"}`, false},
		{"no value", `{"p":}`, false},
		{"empty object", `{}`, false},
		{"empty line", ``, false},
		{"brace only", `}`, false},
		{"array", `[1]`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if fast := checkRecordDecode(t, []byte(tc.line)); fast != tc.fast {
				t.Errorf("%s: fast path %v, want %v", tc.line, fast, tc.fast)
			}
		})
	}
}

// TestRecordDecodeSharesKey: the files of a pack, one after the other,
// share one string for its key, and a record's strings are one
// allocation; what each field holds is unchanged.
func TestRecordDecodeSharesKey(t *testing.T) {
	files := benchFiles(3, 0)
	var d recordDecoder
	var keys []string
	for i := range files {
		line, _ := AppendRecord(nil, &files[i])
		var r record
		if !d.fast(line[:len(line)-1], &r) {
			t.Fatalf("%s: not the fast path", line)
		}
		f, err := r.file()
		if err != nil || fmt.Sprint(f) != fmt.Sprint(files[i]) {
			t.Fatalf("file %d: %+v, %v; want %+v", i, f, err, files[i])
		}
		keys = append(keys, r.Key)
	}
	if files[0].Key != files[2].Key || unsafe.StringData(keys[0]) != unsafe.StringData(keys[2]) {
		t.Errorf("the keys of one pack are not one string")
	}
	line, _ := AppendRecord(nil, &files[0])
	var r record
	if n := testing.AllocsPerRun(100, func() {
		d.key = ""
		d.fast(line[:len(line)-1], &r)
	}); n != 1 {
		t.Errorf("%v allocations to decode a record, want 1", n)
	}
}

// TestReaderLongRecords: records longer than the reader's buffer (files of
// thousands of chunks) read back, between short ones, each as written.
func TestReaderLongRecords(t *testing.T) {
	files := append(benchFiles(16, 0), benchFiles(3, 10000)...)
	for i := range files[16:] {
		files[16+i].Path += fmt.Sprint("-large-", i)
	}
	sortFiles(files)
	x, err := NewReader(bytes.NewReader(benchStream(t, files)))
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	for i := 0; ; i++ {
		f, err := x.Next()
		if err == io.EOF {
			if i != len(files) {
				t.Fatalf("%d files, want %d", i, len(files))
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(f, files[i]) {
			t.Fatalf("file %d: %v\nwant %v", i, f.Path, files[i].Path)
		}
	}
}

// TestSpecial: a word with a byte scanString must look at is always
// found, whatever the bytes around it and wherever it is.
func TestSpecial(t *testing.T) {
	isSpecial := func(c byte) bool { return c == '"' || c == '\\' || c < 0x20 || c >= 0x80 }
	for _, fill := range []byte{'a', ' ', '!', '#', '[', ']', '~', 0x7f, 0x21, 0x5d} {
		for pos := range 8 {
			for c := range 256 {
				w := bytes.Repeat([]byte{fill}, 8)
				w[pos] = byte(c)
				if got := special(binary.LittleEndian.Uint64(w)); got != isSpecial(byte(c)) {
					t.Fatalf("special(%q) = %v", w, got)
				}
			}
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 1 << 20 {
		v := rng.Uint64()
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], v)
		if slices.ContainsFunc(w[:], isSpecial) && !special(v) {
			t.Fatalf("special(%q) = false", w)
		}
	}
}
