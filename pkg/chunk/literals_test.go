package chunk

import (
	"bytes"
	"testing"
)

// TestLiteralsCoded reads the literals' type from frames of every kind the
// coders write.
func TestLiteralsCoded(t *testing.T) {
	e := newEncoder(t, Options{Mode: Auto})
	text := fewSymbols(groupBytes, 1)
	// Matches (a repeated run every 4 KiB), but literals of random bytes,
	// which Huffman coding does not shrink.
	random := randomWithRuns(groupBytes, 2)
	rawFrame, _ := appendRawFrame(nil, random)
	for _, tc := range []struct {
		name  string
		frame []byte
		want  bool
	}{
		{"fast coder, literals that shrink", e.fast.EncodeAll(text, nil), true},
		{"fast coder, literals that do not", e.fast.EncodeAll(random, nil), false},
		{"fastRaw coder, literals that shrink", e.fastRaw.EncodeAll(text, nil), false},
		{"a raw frame", rawFrame, false},
		{"an RLE block", e.fast.EncodeAll(bytes.Repeat([]byte{7}, groupBytes), nil), false},
		{"too short to read: the attempt is kept", []byte{0x28, 0xb5, 0x2f, 0xfd}, true},
		{"a header and no block: the attempt is kept", e.fast.EncodeAll(text, nil)[:6], true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := literalsCoded(tc.frame); got != tc.want {
				t.Fatalf("literalsCoded = %v, want %v", got, tc.want)
			}
		})
	}
}

// groupBytes is the raw size of the groups the tests code: a backup's.
const groupBytes = 128 << 10

// TestGroupsSkipLiteralCodingThatDoesNotPay: groups whose literals the
// fast coder's Huffman pass does not shrink are stored as that coder
// stores them, byte for byte, while most of them skip the pass; when the
// data turns to literals that shrink, fewer than maxLiteralGap groups go
// without, and every group after the first probe that finds them coded is
// coded. Each group decodes to itself.
func TestGroupsSkipLiteralCodingThatDoesNotPay(t *testing.T) {
	e := newEncoder(t, Options{Mode: Auto})
	fresh := newEncoder(t, Options{Mode: Auto}) // the fast coder's bytes, for comparison
	const groups = 40
	for i := range groups {
		raw := randomWithRuns(groupBytes, uint64(i)) // literals that do not shrink
		obj, l := e.EncodeGroup(nil, raw)
		c := l.Chunks[0]
		got := obj[c.StoredOff : c.StoredOff+c.StoredLen]
		if want := fresh.fast.EncodeAll(raw, nil); !bytes.Equal(got, want) {
			t.Fatalf("group %d of random literals is stored in %d bytes, not as the fast coder stores it (%d)", i, len(got), len(want))
		}
		checkStream(t, obj, l.Mode, raw)
	}
	var without []int
	for i := range groups {
		raw := fewSymbols(groupBytes, uint64(100+i))
		obj, l := e.EncodeGroup(nil, raw)
		c := l.Chunks[0]
		coded := literalsCoded(obj[c.StoredOff : c.StoredOff+c.StoredLen])
		if !coded {
			without = append(without, i)
		}
		checkStream(t, obj, l.Mode, raw)
	}
	switch {
	case len(without) == 0 || without[0] != 0:
		t.Fatalf("text groups coded without their literals: %v; want the first ones (the random groups before them skipped the attempt)", without)
	case len(without) >= maxLiteralGap:
		t.Fatalf("%d text groups coded without their literals, want fewer than %d", len(without), maxLiteralGap)
	case without[len(without)-1] != len(without)-1:
		t.Fatalf("text groups coded without their literals: %v; want only a run at the start", without)
	}
}

// TestGroupsOfTextAlwaysTryLiterals: while the literals pay, no group
// skips them: every group is stored as the fast coder stores it.
func TestGroupsOfTextAlwaysTryLiterals(t *testing.T) {
	e := newEncoder(t, Options{Mode: Auto})
	fresh := newEncoder(t, Options{Mode: Auto})
	for i := range 20 {
		raw := fewSymbols(groupBytes, uint64(i))
		obj, l := e.EncodeGroup(nil, raw)
		c := l.Chunks[0]
		if got, want := obj[c.StoredOff:c.StoredOff+c.StoredLen], fresh.fast.EncodeAll(raw, nil); !bytes.Equal(got, want) {
			t.Fatalf("group %d is stored in %d bytes, the fast coder stores it in %d", i, len(got), len(want))
		}
	}
}
