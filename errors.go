package possum

import (
	"errors"
	"fmt"
	"io/fs"
	"strconv"

	"github.com/seed475afdc4/possum/manifest"
)

// Sentinel errors. Match them with errors.Is.
var (
	// ErrNotFound is returned for a key the cache does not hold (or holds
	// only expired or damaged). It is fs.ErrNotExist, so callers may test
	// either.
	ErrNotFound = fs.ErrNotExist
	// ErrClosed is returned by every method of a Cache after Close.
	ErrClosed = errors.New("cache is closed")
	// ErrInvalidKey is returned for an empty key or one longer than MaxKeySize.
	ErrInvalidKey = errors.New("invalid key")
	// ErrTooLarge is returned for a value larger than the cache's capacity.
	ErrTooLarge = errors.New("value too large")
	// ErrUnsupported is errors.ErrUnsupported: the filesystem or platform
	// cannot do what was asked.
	ErrUnsupported = errors.ErrUnsupported
	// ErrNotCache is returned by Open for a directory (or manifest) that is
	// not a possum cache. Open writes nothing into it.
	ErrNotCache = manifest.ErrNotCache
	// ErrNewerVersion is returned by Open for a cache written by a newer
	// possum. Open changes nothing in it.
	ErrNewerVersion = manifest.ErrNewerVersion
	// ErrReadOnly is returned by Open when the cache directory is on a
	// read-only filesystem or cannot be written by this user.
	ErrReadOnly = errors.New("cache directory is not writable")
	// ErrBatchDone is returned by a Batch's methods after Commit or Abort.
	ErrBatchDone = errors.New("batch already committed or aborted")
)

// Error is the error of a failed operation on one key.
type Error struct {
	Op  string // "get", "put", "delete", ...
	Key string
	Err error
}

func (e *Error) Error() string {
	if e.Key == "" {
		return "possum: " + e.Op + ": " + e.Err.Error()
	}
	return "possum: " + e.Op + " " + quoteKey(e.Key) + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// quoteKey shows a key in an error message: quoted, and cut short when long.
func quoteKey(k string) string {
	const show = 64
	if len(k) > show {
		return strconv.Quote(k[:show]) + fmt.Sprintf("... (%d bytes)", len(k))
	}
	return strconv.Quote(k)
}

func opErr(op, key string, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := errors.AsType[*Error](err); ok { // errors.As would allocate a *Error
		return err
	}
	return &Error{Op: op, Key: key, Err: err}
}
