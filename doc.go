// Package possum is a key-value cache in a directory on local disk, shared
// by any number of processes at once with no daemon, and bounded: it never
// holds more than its capacity, and gives the space of what it evicts or
// deletes back to the filesystem.
//
// Values live in sparse, append-only value files and are read with plain
// pread, so hot values come from the operating system's page cache at memory
// speed, and the page cache gives that memory back when the machine needs
// it. A WAL-mode SQLite database, the manifest, records which key lives
// where.
//
//	c, err := possum.Open(dir, &possum.Options{Capacity: 10 << 30})
//	...
//	err = c.PutBytes(ctx, "key", value)
//	v, err := c.Get(ctx, "key") // errors.Is(err, fs.ErrNotExist) on a miss
//
// # Layout on disk
//
//	DIR/manifest.db (+ -wal, -shm)  SQLite: keys, locations, dead extents, settings
//	DIR/values/<16 hex digits>.val  value files: append-only, sparse
//	DIR/stripes                     64 KiB of shared counters that validate reads
//	DIR/README                      says what the directory is
//	DIR/reserve                     a space reserve, so that a full disk can still be freed
//
// The manifest reads well in the sqlite3 shell: see the entries table and the
// entries_readable and usage views. Values of 64 KiB and more start on a
// filesystem block boundary and own whole blocks, so their space can be
// punched exactly; smaller values are packed.
//
// # Concurrency
//
// A Cache is safe for use by many goroutines, and any number of processes
// may open the same directory. Concurrent puts stream their bytes in
// parallel, each into a value file it holds alone (an OFD lock on the file's
// tail), and are published by one shared SQLite transaction (group commit);
// a value is visible only once all its bytes are written. A large value put
// from memory (PutBytes, 256 KiB to 4 MiB) is staged: its transaction
// begins, and runs its statements, while the bytes are being written, and
// the writer commits it once they are (the transaction waits at most 2 ms,
// holding the manifest's write lock, before committing without it). A Get
// takes no lock and usually no SQLite query: it reads the key's stripe
// counter, finds the value's location in a per-process cache, preads it,
// and reads the counter again; a writer bumps the counter of every key it
// changes before the region can be freed, so a read never returns another
// value's bytes or the zeros of a punched hole. A process that puts a key
// it has cached points its cached entry at the new row, if no other commit
// touched the key's stripe meanwhile. Every value also carries a checksum
// (XXH3-64; xxhash64 for values written before schema version 2), checked
// the first time a process reads the value from its location (at every
// read with Options.VerifyEveryRead): bytes damaged behind possum's back
// read as a miss.
//
// # Eviction
//
// The capacity (Options.Capacity, SetCapacity) is kept in the manifest and
// shared by every process. It counts what the cache holds on disk: live
// values (large ones rounded to whole blocks), space freed but not yet given
// back, the measured overhead of the value files, and the manifest with its
// WAL, so that du of the directory stays within the capacity plus at most
// one value in flight per writer. Each commit that leaves the cache over
// capacity evicts, in the same transaction, expired entries first and then
// the least recently used, down to 5% under capacity, and then punches what
// it evicted, and any large value the commit freed, before the writer's
// call returns; small replaced or deleted values are punched by the
// background reclaimer, about a second later, with their dead neighbours.
// Reads are recorded in a per-process buffer written to the manifest about
// once a second (and before any eviction), never in the read itself, and
// only for values whose recorded last use is in the older half of the
// cache's span of uses: like relatime for atime, a read that would not
// change what is evicted next costs no manifest write. A value read at least
// once while in the older half of the cache stays. While the cache is under
// half its capacity (or unbounded), nothing is about to be evicted: the
// buffer then holds read times for up to 30 seconds, writing each key's
// latest once however often it was read, so the last_used_ns column a
// sqlite3 user sees may be that far behind.
//
// A background reclaimer in every open Cache gives back what others left:
// dead regions a crashed process did not punch, tails of puts a killed
// process never committed, files with nothing live. Trim does the same at
// once.
//
// # Snapshots
//
// Open returns a Value whose bytes stay as they were until Close, even if the
// key is replaced, deleted or evicted and its region reclaimed by another
// process. On xfs and btrfs the value's blocks are cloned into an anonymous
// O_TMPFILE (constant time, no space used, gone when closed or when the
// process dies); elsewhere a shared OFD lock on the region keeps the
// reclaimer away until Close. Snapshot and SnapshotPrefix pin several values,
// and a prefix's listing, at one instant. Value.WriteTo uses sendfile and
// copy_file_range; PutFile and Writer.ReadFrom bring files in by reflink
// where they can.
//
// # Platform support
//
// Linux, on ext4, xfs, btrfs and tmpfs, each tested. macOS and the BSDs
// build, with POSIX record locks instead of OFD locks (one process per cache
// there) and without hole punching. Network filesystems (NFS, SMB) are not
// supported: possum needs working byte-range locks and shared memory maps.
//
// # Errors
//
// Misses match fs.ErrNotExist (ErrNotFound). Other failures are *Error
// values naming the operation and key, wrapping a cause that errors.Is can
// match against the sentinels ErrClosed, ErrInvalidKey, ErrTooLarge,
// ErrNotCache, ErrNewerVersion and ErrReadOnly.
package possum
