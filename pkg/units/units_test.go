package units

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

var _ pflag.Value = (*Size)(nil)

func TestParse(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
	}{
		{"0", 0},
		{"4096", 4096},
		{"4096B", 4096},
		{"1KiB", 1024},
		{"1.5KiB", 1536},
		{"16MiB", 16 << 20},
		{"16mib", 16 << 20},
		{"16 MiB", 16 << 20},
		{" 16MiB ", 16 << 20},
		{"4GiB", 4 << 30},
		{"2TiB", 2 << 40},
		{"512k", 512 << 10},
		{"8M", 8 << 20},
		{"1g", 1 << 30},
		{"1t", 1 << 40},
		{"1KB", 1000},
		{"500MB", 500e6},
		{"1GB", 1e9},
		{"2TB", 2e12},
		{"0.3GB", 300e6}, // rounded, not truncated to 299999999
		{".5KiB", 512},
		{"8.388608e+06", 8 << 20}, // how a YAML float reaches a flag
		{"1e3", 1000},
		{"1.5e3KiB", 1500 << 10},
		{"7.5", 8}, // to the nearest byte
	} {
		got, err := Parse(c.in)
		if err != nil || got != c.want {
			t.Errorf("Parse(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct {
		in   string
		want string // in the error
	}{
		{"", "want a number"},
		{"MiB", "want a number"},
		{"lots", "want a number"},
		{"-1MiB", "want a number"},
		{"+1MiB", "want a number"},
		{"1..5MiB", "want a number"},
		{"0x10", "want a number"},
		{"1_000", "want a number"},
		{"inf", "want a number"},
		{"NaN", "want a number"},
		{"8 M iB", "want a number"},
		{"16MB/s", "want a number"}, // a rate only where a rate is meant
		{"16Mb2", "want a number"},
		{"16MiBs", `unknown unit "MiBs"`},
		{"16PiB", `unknown unit "PiB"`},
		{"16 megabytes", `unknown unit "megabytes"`},
		{"10000000TiB", "too large"},
		{"1e400", "too large"},
	} {
		got, err := Parse(c.in)
		if err == nil {
			t.Errorf("Parse(%q) = %d, want an error", c.in, got)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, c.want) || !strings.Contains(msg, `"`+c.in+`"`) {
			t.Errorf("Parse(%q): %q; want it to name the value and say %q", c.in, msg, c.want)
		}
		if c.want != "too large" && (!errors.Is(err, ErrSyntax) || !strings.Contains(msg, "KiB, MiB, GiB, TiB")) {
			t.Errorf("Parse(%q): %q; want ErrSyntax naming the accepted units", c.in, msg)
		}
	}
}

func TestFormat(t *testing.T) {
	for _, c := range []struct {
		in   int64
		want string
	}{
		{0, "0"},
		{1, "1"},
		{1023, "1023"},
		{1024, "1KiB"},
		{1536, "1536"}, // 1.5 KiB is not a whole KiB: bytes
		{16 << 20, "16MiB"},
		{1536 << 10, "1536KiB"},
		{256 << 20, "256MiB"},
		{1 << 30, "1GiB"},
		{3 << 40, "3TiB"},
		{1 << 50, "1024TiB"},
		{1e9, "1000000000"}, // 2^9 × 5^9: not a whole KiB
		{8<<20 + 1, "8388609"},
	} {
		if got := Format(c.in); got != c.want {
			t.Errorf("Format(%d) = %q, want %q", c.in, got, c.want)
		}
		if back, err := Parse(Format(c.in)); err != nil || back != c.in {
			t.Errorf("Parse(Format(%d)) = %d, %v", c.in, back, err)
		}
	}
}

func TestHuman(t *testing.T) {
	for _, c := range []struct {
		in   int64
		want string
	}{
		{0, "0 B"},
		{1023, "1023 B"},
		{1024, "1.0 KiB"},
		{1536, "1.5 KiB"},
		{16 << 20, "16.0 MiB"},
		{5 << 30, "5.0 GiB"},
		{2 << 40, "2.0 TiB"},
		{3 << 50, "3.0 PiB"},
		{-2048, "-2.0 KiB"},
	} {
		if got := Human(c.in); got != c.want {
			t.Errorf("Human(%d) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestPlural(t *testing.T) {
	for _, c := range []struct {
		n    int
		want string
	}{{0, "0 packs"}, {1, "1 pack"}, {2, "2 packs"}, {10000, "10000 packs"}} {
		if got := Plural(c.n, "pack"); got != c.want {
			t.Errorf("Plural(%d, pack) = %q, want %q", c.n, got, c.want)
		}
	}
}

// TestSizeFlag: a Size goes through pflag as every flag does, and a bad
// value's error names the flag and says what is wrong.
func TestSizeFlag(t *testing.T) {
	newSet := func() (*pflag.FlagSet, *int64, *int64, *int64) {
		var chunk, mem, rate int64 = 8 << 20, 256 << 20, 0
		f := pflag.NewFlagSet("test", pflag.ContinueOnError)
		f.SetOutput(io.Discard)
		f.Var(&Size{P: &chunk, Min: 4 << 10, Max: 1 << 30}, "chunk-size", "")
		f.Var(&Size{P: &mem, Min: 16 << 20}, "max-memory", "")
		f.Var(&Size{P: &rate, Min: 64 << 10, Zero: "unlimited", Rate: true}, "max-rate", "")
		return f, &chunk, &mem, &rate
	}
	for _, c := range []struct {
		args              []string
		chunk, mem, rate  int64
		err               string // in the error, with the flag's name, when not ""
		noUnitMissingHint bool
	}{
		{args: nil, chunk: 8 << 20, mem: 256 << 20},
		{args: []string{"--chunk-size", "4MiB"}, chunk: 4 << 20, mem: 256 << 20},
		{args: []string{"--chunk-size=1GiB", "--max-memory", "16MiB"}, chunk: 1 << 30, mem: 16 << 20},
		{args: []string{"--max-rate", "200MiB/s"}, chunk: 8 << 20, mem: 256 << 20, rate: 200 << 20},
		{args: []string{"--max-rate", "1MiB"}, chunk: 8 << 20, mem: 256 << 20, rate: 1 << 20},
		{args: []string{"--max-rate", "0"}, chunk: 8 << 20, mem: 256 << 20},
		{args: []string{"--max-rate", ""}, chunk: 8 << 20, mem: 256 << 20},
		{args: []string{"--max-memory", "8MiB"}, err: "must be at least 16MiB", noUnitMissingHint: true},
		{args: []string{"--max-memory", "0"}, err: "must be at least 16MiB", noUnitMissingHint: true},
		{args: []string{"--max-memory", "200"}, err: "must be at least 16MiB; is the unit missing (e.g. 200MiB)?"},
		{args: []string{"--max-rate", "200"}, err: "must be at least 64KiB/s (or 0: unlimited); is the unit missing (e.g. 200MiB)?"},
		{args: []string{"--max-rate", "1KiB/s"}, err: "must be at least 64KiB/s", noUnitMissingHint: true},
		{args: []string{"--chunk-size", "2GiB"}, err: "must be at most 1GiB"},
		{args: []string{"--chunk-size", "8Mi"}, err: `unknown unit "Mi": want B, KiB, MiB, GiB, TiB`},
		{args: []string{"--max-memory", "lots"}, err: "want a number with an optional unit: B, KiB"},
		{args: []string{"--max-memory", "-1GiB"}, err: "want a number"},
	} {
		f, chunk, mem, rate := newSet()
		err := f.Parse(c.args)
		if c.err != "" {
			name := c.args[0]
			if err == nil || !strings.Contains(err.Error(), c.err) || !strings.Contains(err.Error(), `"`+name+`"`) {
				t.Errorf("%q: error %v; want one naming %s and saying %q", c.args, err, name, c.err)
			}
			if err != nil && c.noUnitMissingHint && strings.Contains(err.Error(), "unit missing") {
				t.Errorf("%q: %v: the value has a unit", c.args, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", c.args, err)
			continue
		}
		if *chunk != c.chunk || *mem != c.mem || *rate != c.rate {
			t.Errorf("%q: chunk %d, memory %d, rate %d; want %d, %d, %d", c.args, *chunk, *mem, *rate, c.chunk, c.mem, c.rate)
		}
	}
}

// TestSizeFlagRoundTrip: what a Size shows (its default in the help, its
// value) sets it to the same number again.
func TestSizeFlagRoundTrip(t *testing.T) {
	for _, n := range []int64{0, 1, 4097, 64 << 10, 8 << 20, 1536 << 10, 5 << 30, 3 << 40} {
		var p int64 = n
		z := &Size{P: &p}
		f := pflag.NewFlagSet("test", pflag.ContinueOnError)
		f.Var(z, "pack-size", "")
		shown := f.Lookup("pack-size").DefValue
		p = -1
		if err := f.Set("pack-size", shown); err != nil || p != n {
			t.Errorf("%d shows as %q, which sets %d (%v)", n, shown, p, err)
		}
		if z.String() != shown || z.Type() != "size" {
			t.Errorf("%d: String %q, Type %q", n, z.String(), z.Type())
		}
	}
	if got := (&Size{}).String(); got != "0" {
		t.Errorf("an unset Size shows %q", got)
	}
	if got := (&Size{Rate: true}).Type(); got != "rate" {
		t.Errorf("a rate's type is %q", got)
	}
}
