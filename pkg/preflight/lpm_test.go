package preflight

import (
	"net/netip"
	"slices"
	"testing"
)

func pfx(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

func TestLPM(t *testing.T) {
	s3 := lpmRoute{prefixes: pfx("52.216.0.0/15", "54.231.0.0/16", "2600:1fa0::/32"), rank: rankPrefixList, target: "vpce-s3"}
	base := []lpmRoute{
		{prefixes: pfx("10.0.0.0/16"), rank: rankStatic, target: "local"},
		{prefixes: pfx("0.0.0.0/0"), rank: rankStatic, target: "nat-1"},
		s3,
	}
	tests := []struct {
		name      string
		routes    []lpmRoute
		addr      string
		ok        bool
		winner    int
		bits      int
		ambiguous bool
	}{
		{"prefix list beats default", base, "52.217.1.1", true, 2, 15, false},
		{"inside VPC is local", base, "10.0.3.4", true, 0, 16, false},
		{"elsewhere takes default", base, "1.1.1.1", true, 1, 0, false},
		{"ipv6 never matches 0.0.0.0/0", base[:2], "2600:1fa0::1", false, 0, 0, false},
		{"ipv6 entry of the list", base, "2600:1fa0::1", true, 2, 32, false},
		{"mapped ipv4 is ipv4", base, "::ffff:52.216.5.5", true, 2, 15, false},
		{"more specific static shadows list",
			append(slices.Clone(base), lpmRoute{prefixes: pfx("52.216.0.0/16"), rank: rankStatic, target: "nat-2"}),
			"52.216.5.5", true, 3, 16, false},
		{"equal length: static beats list",
			append(slices.Clone(base), lpmRoute{prefixes: pfx("52.216.0.0/15"), rank: rankStatic, target: "igw-1"}),
			"52.216.5.5", true, 3, 15, false},
		{"equal length: list beats propagated",
			append(slices.Clone(base), lpmRoute{prefixes: pfx("52.216.0.0/15"), rank: rankPropagated, target: "vgw-1"}),
			"52.216.5.5", true, 2, 15, false},
		{"two lists, same length, other target: ambiguous",
			append(slices.Clone(base), lpmRoute{prefixes: pfx("52.216.0.0/15"), rank: rankPrefixList, target: "tgw-1"}),
			"52.216.5.5", true, 2, 15, true},
		{"two lists, same length, same target: fine",
			append(slices.Clone(base), lpmRoute{prefixes: pfx("52.216.0.0/15"), rank: rankPrefixList, target: "vpce-s3"}),
			"52.216.5.5", true, 2, 15, false},
		{"unmasked route prefix still matches",
			[]lpmRoute{{prefixes: pfx("52.216.9.9/15"), target: "x"}}, "52.217.0.1", true, 0, 15, false},
		{"ipv6 default", []lpmRoute{{prefixes: pfx("::/0"), target: "eigw-1"}, s3}, "2600:1f18::1", true, 0, 0, false},
		{"ipv6 longest", []lpmRoute{{prefixes: pfx("::/0"), target: "eigw-1"}, s3}, "2600:1fa0:ff::1", true, 1, 32, false},
		{"no route", []lpmRoute{s3}, "8.8.8.8", false, 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newLPMTable(tt.routes).lookup(netip.MustParseAddr(tt.addr))
			if m.ok != tt.ok {
				t.Fatalf("ok = %v, want %v", m.ok, tt.ok)
			}
			if !m.ok {
				return
			}
			if m.winner.route != tt.winner || m.winner.prefix.Bits() != tt.bits || m.ambiguous() != tt.ambiguous {
				t.Errorf("got route %d /%d ambiguous=%v, want route %d /%d ambiguous=%v",
					m.winner.route, m.winner.prefix.Bits(), m.ambiguous(), tt.winner, tt.bits, tt.ambiguous)
			}
		})
	}
}

// refLookup is the brute-force reference: compare address bits one by one
// with every prefix, keep each route's longest, pick by (length, rank, index).
func refLookup(routes []lpmRoute, a netip.Addr) (ok bool, winner, bits int, tied []int) {
	a = a.Unmap()
	best := make([]int, len(routes))
	for i, r := range routes {
		best[i] = -1
		for _, p := range r.prefixes {
			if p.IsValid() && p.Addr().Is4() == a.Is4() && sameBits(p.Addr(), a, p.Bits()) && p.Bits() > best[i] {
				best[i] = p.Bits()
			}
		}
	}
	winner = -1
	for i := range routes {
		if best[i] < 0 {
			continue
		}
		if winner < 0 || best[i] > best[winner] || (best[i] == best[winner] && routes[i].rank < routes[winner].rank) {
			winner = i
		}
	}
	if winner < 0 {
		return false, 0, 0, nil
	}
	for i := range routes {
		if i != winner && best[i] == best[winner] && routes[i].rank == routes[winner].rank && routes[i].target != routes[winner].target {
			tied = append(tied, i)
		}
	}
	return true, winner, best[winner], tied
}

func sameBits(x, y netip.Addr, n int) bool {
	xb, yb := x.AsSlice(), y.AsSlice()
	for i := 0; i < n; i++ {
		if xb[i/8]>>(7-i%8)&1 != yb[i/8]>>(7-i%8)&1 {
			return false
		}
	}
	return true
}

// decodeRoutes turns fuzz bytes into a small table. Addresses only vary in
// their top two bytes so that random prefixes overlap often.
func decodeRoutes(b []byte) []lpmRoute {
	var routes []lpmRoute
	for len(b) >= 2 {
		r := lpmRoute{rank: rank(b[0] % 3), target: string(rune('a' + b[0]/3%3))}
		n := int(b[1]%3) + 1
		b = b[2:]
		for ; n > 0 && len(b) >= 3; n-- {
			r.prefixes = append(r.prefixes, decodePrefix(b[0], b[1], b[2]))
			b = b[3:]
		}
		routes = append(routes, r)
	}
	return routes
}

func decodePrefix(bits, hi, lo byte) netip.Prefix {
	if bits&0x80 != 0 {
		var a [16]byte
		a[0], a[1] = hi, lo
		return netip.PrefixFrom(netip.AddrFrom16(a), int(bits&0x7f)%33)
	}
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{hi, lo, 0, 0}), int(bits)%33)
}

func FuzzLPM(f *testing.F) {
	f.Add([]byte{0, 0, 16, 10, 0, 3, 1, 0, 0, 0}, byte(10), byte(0), false)
	f.Add([]byte{6, 1, 15, 52, 216, 15, 54, 231, 0, 0, 0, 0, 0, 3, 0, 16, 52, 216}, byte(52), byte(216), false)
	f.Add([]byte{3, 0, 15, 52, 216, 4, 0, 15, 52, 216}, byte(52), byte(217), false)
	f.Add([]byte{0, 0, 0x80, 0, 0, 1, 0, 0x80 | 32, 0x26, 0x00}, byte(0x26), byte(0), true)
	f.Fuzz(func(t *testing.T, data []byte, hi, lo byte, v6 bool) {
		routes := decodeRoutes(data)
		a := netip.AddrFrom4([4]byte{hi, lo, 1, 1})
		if v6 {
			a = netip.AddrFrom16([16]byte{0: hi, 1: lo, 15: 1})
		}
		m := newLPMTable(routes).lookup(a)
		ok, winner, bits, tied := refLookup(routes, a)
		if m.ok != ok {
			t.Fatalf("ok = %v, reference %v", m.ok, ok)
		}
		if !ok {
			return
		}
		var gotTied []int
		for _, h := range m.tied {
			gotTied = append(gotTied, h.route)
		}
		if m.winner.route != winner || m.winner.prefix.Bits() != bits || !slices.Equal(gotTied, tied) {
			t.Fatalf("got route %d /%d tied %v, reference route %d /%d tied %v",
				m.winner.route, m.winner.prefix.Bits(), gotTied, winner, bits, tied)
		}
	})
}
