package chunk

import "hash/crc32"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// CRC32C returns the Castagnoli CRC of p, as recorded per chunk.
func CRC32C(p []byte) uint32 { return crc32.Checksum(p, castagnoli) }

// UpdateCRC32C continues a Castagnoli CRC.
func UpdateCRC32C(crc uint32, p []byte) uint32 { return crc32.Update(crc, castagnoli, p) }

// CombineCRC32C returns the CRC32C of a followed by b, given a's CRC32C
// crcA, b's crcB and b's length: the checksum of an upload made of pieces
// that were each summed while they were fresh in the CPU's caches. Summing
// a chunk again once its part was gathered was a pass over memory the
// caches had long lost, twice for a chunk (raw and stored): CRC32C was
// 4-7% of a backup's CPU. It costs a product of polynomials per bit of
// lenB, not a pass over b (zlib's crc32_combine, for the reflected
// Castagnoli polynomial).
func CombineCRC32C(crcA, crcB uint32, lenB int64) uint32 {
	switch {
	case lenB <= 0:
		return crcA
	case crcA == 0: // what the product below is: an object's first chunk, a pack's first object
		return crcB
	}
	return multModP(xPow8N(lenB), crcA) ^ crcB
}

// castagnoliReversed is the Castagnoli polynomial, bit-reversed as the
// table-driven CRC uses it.
const castagnoliReversed = 0x82f63b78

// multModP is a(x)·b(x) modulo the polynomial, in the reflected
// representation (bit 31 is x⁰).
func multModP(a, b uint32) uint32 {
	var p uint32
	for m := uint32(1) << 31; m != 0; m >>= 1 {
		if a&m != 0 {
			p ^= b
			if a&(m-1) == 0 {
				break
			}
		}
		if b&1 != 0 {
			b = b>>1 ^ castagnoliReversed
		} else {
			b >>= 1
		}
	}
	return p
}

// x2n[k] is x^(2^k) modulo the polynomial.
var x2n = func() (t [64]uint32) {
	p := uint32(1) << 30 // x¹
	for k := range t {
		t[k] = p
		p = multModP(p, p)
	}
	return t
}()

// xPow8N is x^(8n) modulo the polynomial: n bytes of zeros appended to a
// message shift its CRC by it.
func xPow8N(n int64) uint32 {
	p := uint32(1) << 31 // x⁰
	for k := 3; n > 0; k, n = k+1, n>>1 {
		if n&1 != 0 {
			p = multModP(x2n[k&63], p)
		}
	}
	return p
}
