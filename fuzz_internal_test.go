package possum

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// FuzzPrefixEnd checks prefixEnd, the upper bound of every range scan by
// prefix (List, DeletePrefix, MovePrefix, SnapshotPrefix): a key k is in
// [p, prefixEnd(p)) exactly when it starts with p, and the bound is the
// smallest string above every string with prefix p.
func FuzzPrefixEnd(f *testing.F) {
	for _, s := range [][2]string{
		{"", ""},
		{"", "a"},
		{"a", "a"},
		{"a", "b"},
		{"a", "a\x00"},
		{"a", "a\xff\xff"},
		{"ab", "ac"},
		{"a\xff", "b"},
		{"a\xff", "a\xff\xff\xff"},
		{"a\xff\xff", "b\x00"},
		{"\xff", "\xff"},
		{"\xff", "\xff\x00"},
		{"\xff\xff", "\xff\xfe"},
		{"\xff\xff\xff", "\xff\xff\xff\xff"},
		{"\x00", ""},
		{"\x00", "\x01"},
		{"\x00\xff", "\x01"},
		{"\xfe\xff", "\xff"},
		{"abc", "ab"},
		{"abc", "abd"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, p, k string) {
		orig := p
		end := prefixEnd(p)
		if p != orig {
			t.Fatalf("prefixEnd changed its argument")
		}

		// inRange is the scan the manifest does with [p, end).
		inRange := func(s string) bool {
			return s >= p && (end == nil || s < string(end))
		}

		// Shape: nil exactly when p is empty or all 0xFF; otherwise p up
		// to its last byte below 0xFF, with that byte incremented.
		// (Not strings.TrimRight: its cutset is UTF-8, and "\xff" there
		// stands for every invalid byte.)
		trimmed := p
		for trimmed != "" && trimmed[len(trimmed)-1] == 0xff {
			trimmed = trimmed[:len(trimmed)-1]
		}
		if trimmed == "" {
			if end != nil {
				t.Fatalf("prefixEnd(%q) = %q, want nil", p, end)
			}
		} else {
			i := len(trimmed) - 1
			want := trimmed[:i] + string([]byte{trimmed[i] + 1})
			if string(end) != want {
				t.Fatalf("prefixEnd(%q) = %q, want %q", p, end, want)
			}
		}

		if end != nil {
			e := string(end)
			if e <= p {
				t.Fatalf("prefixEnd(%q) = %q, not above the prefix", p, e)
			}
			if strings.HasPrefix(e, p) {
				t.Fatalf("prefixEnd(%q) = %q has the prefix", p, e)
			}
			// The greatest strings with prefix p start with p followed
			// by any number of 0xFF bytes: they are all below end.
			for _, n := range []int{0, 1, 2, 7, 64} {
				if s := p + strings.Repeat("\xff", n); s >= e {
					t.Fatalf("prefixEnd(%q) = %q, not above %q", p, e, s)
				}
			}
		}

		// The range holds exactly the strings with the prefix: try k and
		// strings built around p, end and k, where a mistake would show.
		cands := []string{k, p + k, k + p}
		for j := 0; j <= len(p); j++ {
			cands = append(cands, p[:j], p[:j]+k, p[:j]+"\x00", p[:j]+"\xff")
		}
		if end != nil {
			e := string(end)
			for j := 0; j <= len(e); j++ {
				cands = append(cands, e[:j], e[:j]+k, e[:j]+"\x00", e[:j]+"\xff")
			}
			last := e[:len(e)-1]
			cands = append(cands, last+string([]byte{e[len(e)-1] - 1})+k)
		}
		for _, s := range cands {
			if got, want := inRange(s), strings.HasPrefix(s, p); got != want {
				t.Fatalf("prefix %q, end %q, key %q: in range %v, has prefix %v", p, end, s, got, want)
			}
			// Byte-wise, as SQLite compares BLOBs.
			cmp := bytes.Compare([]byte(s), []byte(p)) >= 0 && (end == nil || bytes.Compare([]byte(s), end) < 0)
			if cmp != inRange(s) {
				t.Fatalf("string and byte comparison disagree on %q", s)
			}
		}
	})
}

// FuzzKeyCheck checks checkKey: only empty keys and keys longer than
// MaxKeySize are refused, with ErrInvalidKey; any bytes are fine.
func FuzzKeyCheck(f *testing.F) {
	f.Add("", uint16(0))
	f.Add("k", uint16(0))
	f.Add("\x00", uint16(0))
	f.Add("\xff\xfe", uint16(0))
	f.Add("", uint16(MaxKeySize))
	f.Add("", uint16(MaxKeySize+1))
	f.Add("k", uint16(MaxKeySize-1))
	f.Add("k", uint16(MaxKeySize))
	f.Add("ab", uint16(65535))
	f.Fuzz(func(t *testing.T, s string, pad uint16) {
		key := s + strings.Repeat("\x00", int(pad))
		err := checkKey(key)
		bad := key == "" || len(key) > MaxKeySize
		switch {
		case bad && !errors.Is(err, ErrInvalidKey):
			t.Fatalf("checkKey(%d bytes) = %v, want ErrInvalidKey", len(key), err)
		case !bad && err != nil:
			t.Fatalf("checkKey(%d bytes) = %v, want nil", len(key), err)
		}
	})
}
