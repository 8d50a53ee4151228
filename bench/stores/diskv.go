package stores

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"path/filepath"
	"slices"

	"github.com/peterbourgon/diskv/v3"
)

// Diskv is github.com/peterbourgon/diskv/v3: a file per key.
var Diskv = Kind{
	Name:         "diskv",
	Open:         openDiskv,
	MultiProcess: true,
	Bounded:      false,
	Note: "a file per key in one flat directory, CacheSizeMax 0 (no in-memory cache: the disk store is measured), " +
		"TempDir set so a Put writes a temp file and renames it (atomic for readers in other processes); " +
		"no fsync; diskv serializes writes within a process with one mutex",
}

type diskvStore struct{ d *diskv.Diskv }

func openDiskv(_ context.Context, cfg Config) (Store, error) {
	d := diskv.New(diskv.Options{
		BasePath: filepath.Join(cfg.Dir, "data"),
		TempDir:  filepath.Join(cfg.Dir, "tmp"),
		// A flat directory: with subdirectories, diskv's Erase removes a
		// directory it finds empty, racing with another process's Put into it.
		AdvancedTransform: diskvTransform,
		InverseTransform:  func(pk *diskv.PathKey) string { return pk.FileName },
		CacheSizeMax:      0,
		PathPerm:          0o700,
		FilePerm:          0o600,
	})
	return diskvStore{d}, nil
}

// diskvTransform names a key's file: the key itself when it is a safe file
// name, else "=" and the SHA-256 of the key ("=" never begins a safe name,
// so the two kinds of name cannot collide).
func diskvTransform(key string) *diskv.PathKey {
	return &diskv.PathKey{FileName: diskvFileName(key)}
}

func diskvFileName(key string) string {
	if diskvSafe(key) {
		return key
	}
	sum := sha256.Sum256([]byte(key))
	return "=" + hex.EncodeToString(sum[:])
}

func diskvSafe(key string) bool {
	if len(key) == 0 || len(key) > 200 || key[0] == '.' {
		return false
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}

func (s diskvStore) Put(_ context.Context, key string, value []byte) error {
	return s.d.Write(key, value)
}

func (s diskvStore) Get(_ context.Context, key string, buf []byte) ([]byte, error) {
	rc, err := s.d.ReadStream(key, true)
	if errors.Is(err, fs.ErrNotExist) {
		return buf[:0], ErrMiss
	}
	if err != nil {
		return buf[:0], err
	}
	defer rc.Close()
	// Read to EOF: diskv closes the file when its reader reaches EOF (its
	// ReadCloser's Close does nothing).
	buf = buf[:0]
	for {
		var n int
		var err error
		if len(buf) < cap(buf) {
			n, err = rc.Read(buf[len(buf):cap(buf)])
			buf = buf[:len(buf)+n]
		} else {
			// buf is full: look for EOF before growing it.
			var one [512]byte
			n, err = rc.Read(one[:])
			buf = append(buf, one[:n]...)
			if n > 0 {
				buf = slices.Grow(buf, max(len(buf), 32<<10))
			}
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf[:0], err
		}
	}
}

func (s diskvStore) Delete(_ context.Context, key string) error {
	err := s.d.Erase(key)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

func (s diskvStore) Close() error { return nil }
