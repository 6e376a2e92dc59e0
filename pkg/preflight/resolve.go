package preflight

import (
	"fmt"
	"net/netip"
	"strings"
)

// ParseResolve parses overrides in the form HOST=IP[,IP…] (like curl
// --resolve, without the port). The addresses replace DNS for HOST in the
// analysis only; they do not change where the S3 client connects. Hosts are
// matched case-insensitively and without a trailing dot; repeating a host
// adds addresses.
func ParseResolve(specs []string) (map[string][]netip.Addr, error) {
	out := make(map[string][]netip.Addr, len(specs))
	for _, spec := range specs {
		host, list, ok := strings.Cut(spec, "=")
		host = normalizeHost(host)
		if !ok || host == "" || strings.TrimSpace(list) == "" {
			return nil, fmt.Errorf("resolve %q: want HOST=IP[,IP…]", spec)
		}
		for _, s := range strings.Split(list, ",") {
			s = strings.Trim(strings.TrimSpace(s), "[]")
			a, err := netip.ParseAddr(s)
			if err != nil {
				return nil, fmt.Errorf("resolve %q: %w", spec, err)
			}
			out[host] = append(out[host], a.Unmap())
		}
	}
	return out, nil
}

func normalizeHost(h string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), ".")
}
