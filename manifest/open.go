// Package manifest is possum's SQLite manifest: which key lives where, the dead
// extents waiting to be punched, and the settings every process shares. Every
// SQL statement of possum lives in this package; nothing else imports
// database/sql.
//
// The database runs in WAL mode with synchronous=NORMAL (FULL when the cache
// asks for durability). Writes go through a single connection whose
// transactions all begin IMMEDIATE, because under WAL a deferred transaction
// that later upgrades to a writer fails at once with SQLITE_BUSY, whatever the
// busy timeout. Reads go through a separate query-only pool and never wait on
// the write lock.
package manifest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/pressly/goose/v3"
	"golang.org/x/sys/unix"
	_ "modernc.org/sqlite" // the "sqlite" driver, pure Go

	"github.com/seed475afdc4/possum/internal/crashpoint"
	"github.com/seed475afdc4/possum/migrations"
)

// FileName is the manifest's name inside a cache directory.
const FileName = "manifest.db"

// ApplicationID marks a SQLite file as a possum manifest ("poss" in ASCII),
// in the header field SQLite reserves for that (PRAGMA application_id).
const ApplicationID = 0x706f7373

// PageSize is the page size of a new manifest (see openDB).
const PageSize = 1024

// BusyTimeout is how long a writer waits for another process's write
// transaction before giving up with "database is locked". Commits are short
// (milliseconds), so a long wait only ever happens when some process holds
// the lock for a very large batch; thirty seconds covers that without hanging
// forever on a wedged peer.
const BusyTimeout = 30 * time.Second

var (
	// ErrNotCache reports a directory, or a database file, that is not a
	// possum cache. Open refuses it rather than writing into it.
	ErrNotCache = errors.New("not a possum cache")
	// ErrNewerVersion reports a manifest written by a newer possum whose
	// schema this one does not know. Nothing is changed.
	ErrNewerVersion = errors.New("manifest written by a newer version of possum")
	// ErrKeyTooLong reports a key a change would make longer than
	// Config.MaxKey.
	ErrKeyTooLong = errors.New("key too long")
	// ErrKeyEmpty reports a change that would make the empty key.
	ErrKeyEmpty = errors.New("empty key")
)

// Config says how to open a manifest.
type Config struct {
	// Perm is the mode of the manifest's files (SQLite gives its WAL and
	// shared-memory files the database file's mode); 0 means 0600.
	Perm fs.FileMode
	// Sync makes commits durable (synchronous=FULL) instead of merely
	// consistent (synchronous=NORMAL, the default).
	Sync bool
	// StripeOf maps a key to the index of its stripe counter; it is recorded
	// with every dead extent. Required.
	StripeOf func(key []byte) int
	// MaxKey is the longest key MovePrefix may make; 0 means no limit.
	MaxKey int
	// BeforeCommit, if set, is called with the stripes a transaction
	// touched just before it commits (it is called again by the caller
	// after). Bumping them on both sides of the commit means a location
	// cached before the commit is invalid by the time the change is
	// visible: only a read inside the commit itself can see a stale one.
	// It returns the counters as it left them (Tx.PreBumped).
	BeforeCommit func(stripes map[int]struct{}) map[int]uint64
	// LockWriter, if set, is called before each write transaction begins
	// and returns the function that ends it: a lock that serialises
	// writers across processes more promptly than SQLite's busy handler.
	LockWriter func(ctx context.Context) (unlock func(), err error)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Prepare, if set, runs under the directory lock once the directory is
	// known to be a cache (or empty), before the database is opened.
	Prepare func()
	// Init, if set, runs while the directory lock is still held, after the
	// migrations: the place to create the cache's other files.
	Init func() error
	// ReadConns is the size of the read-only pool; 0 means a size fitted to
	// the machine.
	ReadConns int
}

// Manifest is an open manifest database. It is safe for concurrent use.
type Manifest struct {
	path  string
	w     *sqlx.DB // one connection, wc, once open
	r     *sqlx.DB // query-only pool
	cfg   Config
	stmts readStmts
	rs    *stmtCache // statements prepared on r
	// wc is w's connection, held from Open to Close: every write
	// transaction runs on it as plain BEGIN IMMEDIATE and COMMIT
	// statements, not through database/sql's Tx, which starts a goroutine
	// for every transaction and for every query inside one (to watch
	// their contexts), and wraps every prepared statement anew for each
	// transaction. Held, the connection cannot be swapped for a new one
	// between the statements of a transaction.
	wc  *sqlx.Conn
	ws  *stmtCache // statements prepared on wc
	wmu sync.Mutex // held across each write transaction, with cfg.LockWriter
}

// Open opens the manifest in dir, creating or upgrading it under an exclusive
// flock on the directory itself, so that any number of processes may race to
// open a directory for the first time. A directory that holds other files and
// no manifest is refused with ErrNotCache, and a manifest from a newer schema
// with ErrNewerVersion, in both cases without writing anything.
func Open(ctx context.Context, dir string, cfg Config) (_ *Manifest, err error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ReadConns <= 0 {
		cfg.ReadConns = max(4, 2*runtime.GOMAXPROCS(0))
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	path := filepath.Join(dir, FileName)
	if err := checkIsCache(dir, path); err != nil {
		return nil, err
	}
	if cfg.Prepare != nil {
		cfg.Prepare()
	}
	if err := createWithPerm(path, cfg.Perm); err != nil {
		return nil, err
	}
	m := &Manifest{path: path, cfg: cfg}
	defer func() {
		if err != nil {
			m.Close()
		}
	}()
	if m.w, err = openDB(path, cfg.Sync, false); err != nil {
		return nil, err
	}
	m.w.SetMaxOpenConns(1)
	if _, err := m.w.ExecContext(ctx, "PRAGMA journal_mode = WAL"); err != nil {
		return nil, fmt.Errorf("manifest: WAL mode: %w", err)
	}
	if err := m.migrate(ctx); err != nil {
		return nil, err
	}
	crashpoint.Hit("migrate:after")
	if cfg.Init != nil {
		if err := cfg.Init(); err != nil {
			return nil, err
		}
	}
	if m.wc, err = m.w.Connx(context.Background()); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	m.ws = newStmtCache(m.wc.PreparexContext)
	if m.r, err = openDB(path, cfg.Sync, true); err != nil {
		return nil, err
	}
	m.r.SetMaxOpenConns(cfg.ReadConns)
	m.r.SetMaxIdleConns(cfg.ReadConns)
	m.rs = newStmtCache(m.r.PreparexContext)
	if err := m.prepare(ctx); err != nil {
		return nil, err
	}
	return m, nil
}

// Close closes both pools. It is safe to call more than once.
func (m *Manifest) Close() error {
	var errs []error
	m.stmts.close()
	m.rs.close()
	m.ws.close()
	if m.wc != nil {
		errs = append(errs, m.wc.Close())
		m.wc = nil
	}
	for _, db := range []*sqlx.DB{m.r, m.w} {
		if db != nil {
			errs = append(errs, db.Close())
		}
	}
	m.r, m.w = nil, nil
	return errors.Join(errs...)
}

// Path is the manifest's file name.
func (m *Manifest) Path() string { return m.path }

func (m *Manifest) now() int64 { return m.cfg.Now().UnixNano() }

func openDB(path string, sync, readOnly bool) (*sqlx.DB, error) {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", BusyTimeout.Milliseconds()))
	if sync {
		q.Add("_pragma", "synchronous(FULL)")
	} else {
		q.Add("_pragma", "synchronous(NORMAL)")
	}
	// Savepoints (one per request in a group commit) copy every page they
	// first touch to a statement journal: in memory, not a temporary file.
	q.Add("_pragma", "temp_store(MEMORY)")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	} else {
		// A new manifest gets small pages: a commit writes each page it
		// changed whole into the WAL, and a put changes a handful of pages
		// (its row and its place in each index), so 1 KiB pages write a
		// quarter of the bytes 4 KiB ones do. The pragma only applies to a
		// database not yet written: modernc runs the _pragma list in
		// lexicographic order, so WAL mode (which writes the header) is
		// set after, by Open.
		q.Add("_pragma", fmt.Sprintf("page_size(%d)", PageSize))
		// After a checkpoint, cut the WAL back to this size: it counts
		// against the cache's capacity like every other byte it holds.
		q.Add("_pragma", "journal_size_limit(4194304)")
		q.Set("_txlock", "immediate")
	}
	// SQLite reads "file:" names as URIs, so the path is escaped as one.
	dsn := (&url.URL{Scheme: "file", Path: path, RawQuery: q.Encode()}).String()
	db, err := sqlx.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open manifest: %w", err)
	}
	db.SetConnMaxIdleTime(0)
	db.SetConnMaxLifetime(0)
	return db, nil
}

// createWithPerm creates the database file, empty, with mode perm, if it
// does not exist: SQLite would create it with its own default (0644, less
// the umask), readable by every user, and it gives the WAL and
// shared-memory files the mode of the database file. An existing manifest
// that this process may not write is refused here, with a clear error,
// rather than at the first commit.
func createWithPerm(path string, perm fs.FileMode) error {
	if perm == 0 {
		perm = 0o600
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, perm)
	if err == nil {
		if err := f.Chmod(perm); err != nil { // the umask had its say
			f.Close()
			return err
		}
		return f.Close()
	}
	if !errors.Is(err, fs.ErrExist) {
		return err
	}
	for _, name := range []string{path, path + "-wal", path + "-shm"} {
		if err := unix.Access(name, unix.R_OK|unix.W_OK); err != nil && !errors.Is(err, unix.ENOENT) {
			return &fs.PathError{Op: "open", Path: name, Err: err}
		}
	}
	return nil
}

// lockDir takes an exclusive flock on the directory. flock (not an OFD or
// POSIX record lock) because a directory cannot be opened for writing, and
// because SQLite's own POSIX locks on the database must not be disturbed.
func lockDir(dir string) (func(), error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	for {
		err = unix.Flock(fd, unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		unix.Close(fd)
		return nil, &fs.PathError{Op: "flock", Path: dir, Err: err}
	}
	return func() { unix.Close(fd) }, nil
}

// knownNames are the entries a possum directory may hold; a directory with
// only these (a cold start that was interrupted) may be initialised.
var knownNames = map[string]bool{
	FileName: true, FileName + "-wal": true, FileName + "-shm": true,
	FileName + "-journal": true, "stripes": true, "values": true, "README": true, "reserve": true,
}

func checkIsCache(dir, path string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if !knownNames[e.Name()] {
			return fmt.Errorf("%s: %w: it holds %q and no manifest", dir, ErrNotCache, e.Name())
		}
	}
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: %w: not a regular file", path, ErrNotCache)
	}
	return nil
}

func (m *Manifest) migrate(ctx context.Context) error {
	var appID int64
	if err := m.w.GetContext(ctx, &appID, "PRAGMA application_id"); err != nil {
		return fmt.Errorf("%s: %w: %v", m.path, ErrNotCache, err)
	}
	var tables []string
	if err := m.w.SelectContext(ctx, &tables,
		"SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"); err != nil {
		return fmt.Errorf("%s: %w: %v", m.path, ErrNotCache, err)
	}
	// A database with no table but goose's version table is a first Open
	// that was killed after goose created that table and before the
	// schema's transaction committed: carry on creating it.
	foreign := slices.DeleteFunc(slices.Clone(tables), func(t string) bool { return t == "goose_db_version" })
	if appID != ApplicationID && len(foreign) > 0 {
		return fmt.Errorf("%s: %w: a SQLite database with tables %s", m.path, ErrNotCache, strings.Join(tables, ", "))
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, m.w.DB, migrations.FS)
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	current, err := p.GetDBVersion(ctx)
	if err != nil && len(tables) > 0 {
		return fmt.Errorf("%s: read schema version: %w", m.path, err)
	}
	sources := p.ListSources()
	latest := sources[len(sources)-1].Version
	if current > latest {
		return fmt.Errorf("%s: %w: schema version %d, this possum knows up to %d", m.path, ErrNewerVersion, current, latest)
	}
	if current == latest {
		return nil
	}
	crashpoint.Hit("migrate:before")
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("%s: migrate: %w", m.path, err)
	}
	return nil
}

// scanErr turns sql.ErrNoRows into fs.ErrNotExist.
func scanErr(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return fs.ErrNotExist
	}
	return err
}

// WALLimit is the size past which the committer forces a checkpoint that
// empties the WAL. SQLite's own checkpoints (every 1000 pages, about 4 MiB)
// copy the WAL back into the database but cannot start it over while other
// processes keep reading, so under steady load from several processes it
// only grows; a TRUNCATE checkpoint waits for the readers and empties it.
const WALLimit = 4 << 20

// Checkpoint copies the WAL into the database and empties it, waiting (up
// to the busy timeout) for readers that still use it.
func (m *Manifest) Checkpoint(ctx context.Context) error {
	unlock, err := m.lockWriter(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	_, err = m.wc.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)")
	return err
}

// lockWriter excludes other write transactions, of this process (wmu) and
// of others (cfg.LockWriter), until the returned function is called.
func (m *Manifest) lockWriter(ctx context.Context) (func(), error) {
	m.wmu.Lock()
	if m.cfg.LockWriter == nil {
		return m.wmu.Unlock, nil
	}
	unlock, err := m.cfg.LockWriter(ctx)
	if err != nil {
		m.wmu.Unlock()
		return nil, err
	}
	return func() { unlock(); m.wmu.Unlock() }, nil
}
