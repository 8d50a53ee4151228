package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
)

// Values are self-describing, so every read of every store is checked
// without keeping a copy of what was written:
//
//	[0:8)   headerHash(key, version), little endian
//	[8:16)  version, little endian (any version is valid; puts bump it)
//	[16:)   a slice of the random pool starting at bodyOffset(key, version)
//
// The pool is generated from a fixed seed, so child processes regenerate the
// same bytes and can check values that other processes wrote.

// headerLen is the size of a value's header; values are at least this long.
const headerLen = 16

// poolSlack is how much longer than the largest value the pool is, so bodies
// start at many different offsets.
const poolSlack = 1 << 20

// poolSeed makes the pool the same in every process.
var poolSeed = [32]byte{'p', 'o', 's', 's', 'u', 'm', '-', 'b', 'e', 'n', 'c', 'h'}

// valueCodec encodes and checks values of one size.
type valueCodec struct {
	pool []byte
	size int
}

// newPool returns the random pool for values up to maxValue bytes.
func newPool(maxValue int) []byte {
	p := make([]byte, poolSize(maxValue))
	rand.NewChaCha8(poolSeed).Read(p)
	return p
}

// poolSize is the length of the pool for values up to maxValue bytes.
func poolSize(maxValue int) int { return maxValue + poolSlack }

func newCodec(pool []byte, size int) *valueCodec {
	if size < headerLen {
		panic(fmt.Sprintf("value size %d below %d", size, headerLen))
	}
	if size > len(pool) {
		panic(fmt.Sprintf("value size %d above pool %d", size, len(pool)))
	}
	return &valueCodec{pool: pool, size: size}
}

// mix64 is splitmix64's finalizer.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// keyHash is FNV-1a, mixed; stable across processes (unlike maphash).
func keyHash(key string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(key); i++ {
		h ^= uint64(key[i])
		h *= 1099511628211
	}
	return mix64(h)
}

// headerHash ties a value's header to its key and version, so a corrupt
// version byte is caught even in a value with no body.
func headerHash(h, version uint64) uint64 { return mix64(h ^ mix64(version+1)) }

func (c *valueCodec) bodyOffset(h, version uint64) int {
	span := uint64(len(c.pool) - (c.size - headerLen) + 1)
	return int(mix64(h^(version*0x9e3779b97f4a7c15)) % span)
}

// encode writes the value of (key, version) into dst (reused when large
// enough) and returns it.
func (c *valueCodec) encode(dst []byte, key string, version uint64) []byte {
	if cap(dst) < c.size {
		dst = make([]byte, c.size)
	}
	dst = dst[:c.size]
	h := keyHash(key)
	binary.LittleEndian.PutUint64(dst[0:8], headerHash(h, version))
	binary.LittleEndian.PutUint64(dst[8:16], version)
	off := c.bodyOffset(h, version)
	copy(dst[headerLen:], c.pool[off:off+c.size-headerLen])
	return dst
}

// check returns the version of v if v is a valid value of key, or an error
// saying what is wrong.
func (c *valueCodec) check(key string, v []byte) (uint64, error) {
	if len(v) != c.size {
		return 0, fmt.Errorf("length %d, want %d", len(v), c.size)
	}
	h := keyHash(key)
	version := binary.LittleEndian.Uint64(v[8:16])
	if got, want := binary.LittleEndian.Uint64(v[0:8]), headerHash(h, version); got != want {
		return 0, fmt.Errorf("header hash %016x, want %016x for version %d (a value of another key, or a damaged header)", got, want, version)
	}
	off := c.bodyOffset(h, version)
	want := c.pool[off : off+c.size-headerLen]
	if !bytes.Equal(v[headerLen:], want) {
		i := 0
		for i < len(want) && v[headerLen+i] == want[i] {
			i++
		}
		return version, fmt.Errorf("version %d: byte %d is %#02x, want %#02x", version, headerLen+i, v[headerLen+i], want[i])
	}
	return version, nil
}

// keyName is the name of key i: "k%09d", without fmt's cost.
func keyName(i int) string {
	var b [10]byte
	b[0] = 'k'
	for j := 9; j >= 1; j-- {
		b[j] = byte('0' + i%10)
		i /= 10
	}
	return string(b[:])
}

// missKey returns a key that is never written: an index beyond the key set.
func missKey(r *rand.Rand, n int) string {
	return keyName(n + 1 + r.IntN(900_000_000))
}

// zipfPicker picks key indexes in [0, n) with a Zipf distribution (s=1.1,
// v=1). Ranks are spread over the key range by a multiplication modulo n, so
// the hot keys are not all neighbours (which would favour stores that keep
// neighbouring keys together).
type zipfPicker struct {
	z   *rand.Zipf
	n   uint64
	mul uint64
}

func newZipfPicker(r *rand.Rand, n int) *zipfPicker {
	if n < 1 {
		panic("zipf over no keys")
	}
	p := &zipfPicker{n: uint64(n)}
	if n > 1 {
		p.z = rand.NewZipf(r, 1.1, 1, uint64(n-1))
	}
	p.mul = 2654435761 % p.n
	for p.mul == 0 || gcd(p.mul, p.n) != 1 {
		p.mul++
	}
	return p
}

func (p *zipfPicker) next() int {
	if p.z == nil {
		return 0
	}
	return int(p.z.Uint64() * p.mul % p.n)
}

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
