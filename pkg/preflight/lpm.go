package preflight

import (
	"net/netip"
	"sort"
)

// This file is the route-selection engine: which route of one VPC route table
// carries a packet to one address. It knows nothing of AWS types so that it
// can be tested (and fuzzed) on its own.

// rank orders routes that tie on prefix length. AWS documents the order: a
// static route beats a prefix-list route, which beats a propagated one. A lower
// rank wins.
type rank int

const (
	rankStatic rank = iota
	rankPrefixList
	rankPropagated
)

// lpmRoute is one route as the engine sees it: one prefix for a CIDR route,
// every entry of the list for a prefix-list route.
type lpmRoute struct {
	prefixes []netip.Prefix
	rank     rank
	target   string // routes with equal targets never make a tie ambiguous
}

// lpmHit is the longest prefix of one route that contains an address.
type lpmHit struct {
	route  int
	prefix netip.Prefix
	rank   rank
	target string
}

// lpmMatch is the outcome for one address.
type lpmMatch struct {
	ok     bool
	winner lpmHit
	// tied are routes as long and as preferred as the winner but with
	// another target: AWS then picks one of them, so the path is ambiguous.
	tied []lpmHit
	// all lists every route containing the address, best first; callers use it
	// to name the route a winner shadows.
	all []lpmHit
}

func (m lpmMatch) ambiguous() bool { return len(m.tied) > 0 }

type lpmTable struct{ routes []lpmRoute }

// newLPMTable masks every prefix once, so that lookups compare like with like.
func newLPMTable(routes []lpmRoute) *lpmTable {
	t := &lpmTable{routes: make([]lpmRoute, len(routes))}
	for i, r := range routes {
		ps := make([]netip.Prefix, 0, len(r.prefixes))
		for _, p := range r.prefixes {
			if p.IsValid() {
				ps = append(ps, p.Masked())
			}
		}
		t.routes[i] = lpmRoute{prefixes: ps, rank: r.rank, target: r.target}
	}
	return t
}

// lookup selects the route for a. IPv4 addresses only ever match IPv4
// prefixes and IPv6 addresses IPv6 prefixes (an IPv4-mapped IPv6 address is
// treated as the IPv4 address it carries, as the kernel would send it).
func (t *lpmTable) lookup(a netip.Addr) lpmMatch {
	a = a.Unmap().WithZone("")
	var hits []lpmHit
	for i, r := range t.routes {
		best := -1
		var bestP netip.Prefix
		for _, p := range r.prefixes {
			if p.Contains(a) && p.Bits() > best {
				best, bestP = p.Bits(), p
			}
		}
		if best >= 0 {
			hits = append(hits, lpmHit{route: i, prefix: bestP, rank: r.rank, target: r.target})
		}
	}
	if len(hits) == 0 {
		return lpmMatch{}
	}
	sort.SliceStable(hits, func(i, j int) bool { return better(hits[i], hits[j]) })
	m := lpmMatch{ok: true, winner: hits[0], all: hits}
	for _, h := range hits[1:] {
		if h.prefix.Bits() != m.winner.prefix.Bits() || h.rank != m.winner.rank {
			break
		}
		if h.target != m.winner.target {
			m.tied = append(m.tied, h)
		}
	}
	return m
}

// better reports whether a is preferred over b: longer prefix, then lower
// rank, then the earlier route (so results are deterministic).
func better(a, b lpmHit) bool {
	if a.prefix.Bits() != b.prefix.Bits() {
		return a.prefix.Bits() > b.prefix.Bits()
	}
	if a.rank != b.rank {
		return a.rank < b.rank
	}
	return a.route < b.route
}
