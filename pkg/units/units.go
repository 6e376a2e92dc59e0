// Package units reads and writes the sizes of s3bak's flags and config
// (256MiB, 1.5GiB, 4096), as numbers and as pflag values, and says counts
// in words ("1 pack", "3 packs").
//
// One parser serves every size: --chunk-size, --pack-size, --part-size,
// --estimate-bytes, --max-memory, --max-rate, whether set on the command
// line, in an S3BAK_* variable or in the config file.
package units

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// The binary units.
const (
	KiB int64 = 1 << (10 * (iota + 1))
	MiB
	GiB
	TiB
)

// unit is a suffix a size may end with, matched without regard to case.
type unit struct {
	suffix string
	mult   int64
}

// units are tried in order: the longer suffixes before the shorter ones
// they end with. KiB..TiB (and K, M, G, T) are powers of 1024, KB..TB powers
// of 1000, B is bytes.
var units = []unit{
	{"kib", KiB}, {"mib", MiB}, {"gib", GiB}, {"tib", TiB},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12},
	{"k", KiB}, {"m", MiB}, {"g", GiB}, {"t", TiB}, {"b", 1},
}

// Accepted names the units a size may have, for error messages.
const Accepted = "B, KiB, MiB, GiB, TiB (powers of 1024), or KB, MB, GB, TB (powers of 1000)"

// ErrSyntax means a size is not a number with an optional unit.
var ErrSyntax = errors.New("not a size")

// Parse reads a size in bytes: a non-negative number, possibly with a
// fraction, and an optional unit (Accepted; also K, M, G, T for KiB..TiB),
// in any case, optionally after a space: 4096, 512k, 16MiB, 1.5 GiB, 500MB.
// A fractional number of bytes is rounded to the nearest byte.
func Parse(s string) (int64, error) {
	n, _, err := parse(s)
	if err != nil {
		return 0, fmt.Errorf("%q: %w", s, err)
	}
	return n, nil
}

// parse is Parse that also tells whether s has a unit (a number without one
// that is too small was probably meant with one). Its errors do not repeat
// s: pflag's already do.
func parse(s string) (n int64, hasUnit bool, err error) {
	t := strings.TrimSpace(s)
	num := strings.TrimRightFunc(t, isLetter)
	suffix := t[len(num):]
	num = strings.TrimSpace(num)
	hasUnit = suffix != ""
	if !isNumber(num) {
		return 0, hasUnit, fmt.Errorf("%w: want a number with an optional unit: %s", ErrSyntax, Accepted)
	}
	mult := int64(1)
	if hasUnit {
		mult = 0
		for _, u := range units {
			if strings.EqualFold(suffix, u.suffix) {
				mult = u.mult
				break
			}
		}
		if mult == 0 {
			return 0, true, fmt.Errorf("%w: unknown unit %q: want %s", ErrSyntax, suffix, Accepted)
		}
	}
	v, err := strconv.ParseFloat(num, 64)
	b := math.Round(v * float64(mult))
	if err != nil || b >= math.MaxInt64 { // isNumber leaves only ErrRange
		return 0, hasUnit, errors.New("too large")
	}
	return int64(b), hasUnit, nil
}

func isLetter(r rune) bool { return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' }

// isNumber accepts what a person or a YAML file writes for a number:
// decimal digits with an optional fraction and exponent (YAML gives a float
// as 8.388608e+06). It leaves out the rest of what ParseFloat takes: a
// sign, hexadecimal, underscores, Inf and NaN.
func isNumber(s string) bool {
	if s == "" || !(s[0] >= '0' && s[0] <= '9' || s[0] == '.') {
		return false
	}
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r == '.' || r == 'e' || r == 'E' || r == '+' || r == '-') {
			return false
		}
	}
	_, err := strconv.ParseFloat(s, 64)
	return err == nil || errors.Is(err, strconv.ErrRange)
}

// Size is a flag of bytes, a pflag.Value: it stores at P what Parse reads,
// and checks the bounds when it is set, so that a bad value is reported
// with the flag's name and where it came from (pflag names the flag;
// s3bak's config adds the S3BAK_* variable or the file).
type Size struct {
	P    *int64
	Min  int64  // the smallest value accepted (but see Zero)
	Max  int64  // the largest; no limit when 0
	Zero string // when set, 0 is accepted whatever Min is, and means this ("unlimited")
	Rate bool   // bytes a second: takes an optional /s, and an empty value is 0
}

// Set parses s into *P.
func (z *Size) Set(s string) error {
	t := strings.TrimSpace(s)
	if z.Rate {
		t = strings.TrimSpace(strings.TrimSuffix(strings.TrimSuffix(t, "/s"), "/S"))
		if t == "" {
			t = "0"
		}
	}
	n, hasUnit, err := parse(t)
	switch {
	case err != nil:
		return err
	case n == 0 && z.Zero != "":
	case n < z.Min:
		msg := "must be at least " + z.format(z.Min)
		if z.Zero != "" {
			msg += " (or 0: " + z.Zero + ")"
		}
		if !hasUnit && n > 0 {
			msg += fmt.Sprintf("; is the unit missing (e.g. %sMiB)?", t)
		}
		return errors.New(msg)
	case z.Max > 0 && n > z.Max:
		return errors.New("must be at most " + z.format(z.Max))
	}
	*z.P = n
	return nil
}

// String is the value as Format writes it; "0" before P is set.
func (z *Size) String() string {
	if z == nil || z.P == nil {
		return "0"
	}
	return Format(*z.P)
}

// Type is what pflag's help shows as the value's kind: size, or rate.
func (z *Size) Type() string {
	if z.Rate {
		return "rate"
	}
	return "size"
}

func (z *Size) format(n int64) string {
	if z.Rate {
		return Format(n) + "/s"
	}
	return Format(n)
}

// Format writes n exactly, in the largest binary unit that divides it, so
// that Parse reads back the same number: 16MiB, 1536KiB, 4097, 0.
func Format(n int64) string {
	if n != 0 {
		for _, u := range []struct {
			name string
			mult int64
		}{{"TiB", TiB}, {"GiB", GiB}, {"MiB", MiB}, {"KiB", KiB}} {
			if n%u.mult == 0 {
				return strconv.FormatInt(n/u.mult, 10) + u.name
			}
		}
	}
	return strconv.FormatInt(n, 10)
}

// Human writes n for people, rounded to one decimal in the largest binary
// unit it reaches: 512 B, 1.5 KiB, 16.0 MiB.
func Human(n int64) string {
	if n < KiB && n > -KiB {
		return fmt.Sprintf("%d B", n)
	}
	neg := ""
	if n < 0 {
		neg, n = "-", -n
	}
	div, exp := KiB, 0
	for m := n / KiB; m >= KiB && exp < 5; m /= KiB {
		div *= KiB
		exp++
	}
	return fmt.Sprintf("%s%.1f %ciB", neg, float64(n)/float64(div), "KMGTPE"[exp])
}

// Plural says a count with its noun, singular for one: Plural(1, "pack") is
// "1 pack", Plural(3, "pack") "3 packs". The noun must take a plain -s.
func Plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}
