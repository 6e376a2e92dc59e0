package testfixture

import "math/rand/v2"

// RandomBytes is n bytes that do not compress (zstd stores their chunks as
// raw blocks), the same for the same seed.
func RandomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 2))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}
