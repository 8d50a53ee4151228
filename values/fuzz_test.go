package values

import "testing"

// maxFuzzOffset bounds the offsets and lengths FuzzPlacement tries, far
// below where rounding up could overflow an int64.
const maxFuzzOffset = 1 << 50

// FuzzPlacement checks the layout arithmetic: AlignUp, AlignDown and
// Placement, for every alignment unit from 512 bytes to 1 MiB. Two values
// placed one after the other never overlap, and large ones own whole blocks
// (DESIGN.md, Writes: they can be punched exactly and cloned).
func FuzzPlacement(f *testing.F) {
	const L = LargeValue
	for _, s := range []struct {
		end, n, n2 uint64
		shift      uint8
	}{
		{0, 0, 0, 0},
		{0, 1, 1, 3},
		{1, L, 1, 3},
		{1, L - 1, L, 3},
		{4095, L, L, 3},
		{4096, L, L - 1, 3},
		{4097, L + 1, 1, 3},
		{12345, 200 << 10, 0, 3},
		{L, L, L, 7},
		{(1 << 20) - 1, 1 << 20, (1 << 20) + 1, 11},
		{1 << 20, 3 << 20, 5, 11},
		{maxFuzzOffset - 1, maxFuzzOffset - 1, maxFuzzOffset - 1, 11},
		{511, 513, L, 0},
		{7, 0, L, 5},
	} {
		f.Add(s.end, s.n, s.n2, s.shift)
	}
	f.Fuzz(func(t *testing.T, rawEnd, rawN, rawN2 uint64, shift uint8) {
		a := int64(512) << (shift % 12) // 512 .. 1 MiB
		end := int64(rawEnd % maxFuzzOffset)
		n := int64(rawN % maxFuzzOffset)
		n2 := int64(rawN2 % maxFuzzOffset)

		for _, x := range []int64{end, n, n2} {
			up := AlignUp(x, a)
			if up < x || up >= x+a || up%a != 0 {
				t.Fatalf("AlignUp(%d, %d) = %d", x, a, up)
			}
			if x%a == 0 && up != x {
				t.Fatalf("AlignUp(%d, %d) = %d, moved a multiple", x, a, up)
			}
			if AlignUp(up, a) != up {
				t.Fatalf("AlignUp(%d, %d) not idempotent", x, a)
			}
			down := AlignDown(x, a)
			if down > x || down <= x-a || down%a != 0 {
				t.Fatalf("AlignDown(%d, %d) = %d", x, a, down)
			}
			if down < 0 {
				t.Fatalf("AlignDown(%d, %d) = %d, negative", x, a, down)
			}
			if x%a == 0 && down != x {
				t.Fatalf("AlignDown(%d, %d) = %d, moved a multiple", x, a, down)
			}
			if x%a != 0 && up-down != a {
				t.Fatalf("AlignUp and AlignDown of %d (unit %d) are %d and %d, not one unit apart", x, a, up, down)
			}
		}

		d := &Dir{align: a}
		check := func(end, n int64) (off, fp int64) {
			off, fp = d.Placement(end, n)
			if off < end {
				t.Fatalf("Placement(%d, %d) with unit %d = %d, %d: before the end", end, n, a, off, fp)
			}
			if n >= LargeValue {
				if off%a != 0 || fp%a != 0 {
					t.Fatalf("Placement(%d, %d) with unit %d = %d, %d: large value not aligned", end, n, a, off, fp)
				}
				if fp < n || fp >= n+a {
					t.Fatalf("Placement(%d, %d) with unit %d = %d, %d: footprint not the length rounded up", end, n, a, off, fp)
				}
				if off >= end+a {
					t.Fatalf("Placement(%d, %d) with unit %d = %d, %d: skips a whole unit", end, n, a, off, fp)
				}
			} else if off != end || fp != n {
				t.Fatalf("Placement(%d, %d) with unit %d = %d, %d: small value not packed", end, n, a, off, fp)
			}
			return off, fp
		}
		off1, fp1 := check(end, n)
		next := off1 + fp1
		off2, fp2 := check(next, n2)
		// [off1, off1+fp1) and [off2, off2+fp2) are disjoint.
		if off2 < next || (fp1 > 0 && fp2 > 0 && off1 < off2+fp2 && off2 < off1+fp1) {
			t.Fatalf("unit %d: values [%d, +%d) and [%d, +%d) overlap", a, off1, fp1, off2, fp2)
		}
	})
}
