package manifest

import (
	"context"
	"database/sql"
	"sync"

	"github.com/jmoiron/sqlx"
)

// stmtCache prepares each distinct query once per pool. database/sql then
// keeps the statement prepared on each connection it has run on, so a query
// is parsed once per connection instead of on every call: parsing was a
// third of a small put's CPU time.
type stmtCache struct {
	db      *sqlx.DB
	mu      sync.Mutex
	m       map[string]*sqlx.Stmt
	pending []string // queries to prepare when the connection is free
}

func newStmtCache(db *sqlx.DB) *stmtCache { return &stmtCache{db: db, m: map[string]*sqlx.Stmt{}} }

func (c *stmtCache) get(ctx context.Context, query string) (*sqlx.Stmt, error) {
	c.mu.Lock()
	s := c.m[query]
	c.mu.Unlock()
	if s != nil {
		return s, nil
	}
	s, err := c.db.PreparexContext(ctx, query)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.m[query]; old != nil {
		s.Close()
		return old, nil
	}
	c.m[query] = s
	return s, nil
}

func (c *stmtCache) close() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for q, s := range c.m {
		s.Close()
		delete(c.m, q)
	}
}

// Read-pool helpers.

func (m *Manifest) rget(ctx context.Context, dest any, query string, args ...any) error {
	s, err := m.rs.get(ctx, query)
	if err != nil {
		return err
	}
	return s.GetContext(ctx, dest, args...)
}

func (m *Manifest) rsel(ctx context.Context, dest any, query string, args ...any) error {
	s, err := m.rs.get(ctx, query)
	if err != nil {
		return err
	}
	return s.SelectContext(ctx, dest, args...)
}

func (m *Manifest) rqueryx(ctx context.Context, query string, args ...any) (*sqlx.Rows, error) {
	s, err := m.rs.get(ctx, query)
	if err != nil {
		return nil, err
	}
	return s.QueryxContext(ctx, args...)
}

// Transaction helpers. The write pool has a single connection, which the
// transaction holds: a statement cannot be prepared on the pool while it
// runs. So a query not prepared yet runs unprepared, and is noted; Update
// prepares the noted queries once the transaction is over.

// cached returns the prepared statement for query bound to tx, or nil.
func (tx *Tx) cached(query string) *sqlx.Stmt {
	c := tx.m.ws
	c.mu.Lock()
	s := c.m[query]
	if s == nil {
		c.pending = append(c.pending, query)
	}
	c.mu.Unlock()
	if s == nil {
		return nil
	}
	return tx.tx.StmtxContext(tx.ctx, s)
}

// preparePending prepares the queries noted during transactions.
func (c *stmtCache) preparePending(ctx context.Context) {
	c.mu.Lock()
	pending := c.pending
	c.pending = nil
	c.mu.Unlock()
	for _, q := range pending {
		c.get(ctx, q) // a failure only means the query stays unprepared
	}
}

func (tx *Tx) exec(query string, args ...any) (sql.Result, error) {
	if s := tx.cached(query); s != nil {
		return s.ExecContext(tx.ctx, args...)
	}
	return tx.tx.ExecContext(tx.ctx, query, args...)
}

func (tx *Tx) get(dest any, query string, args ...any) error {
	if s := tx.cached(query); s != nil {
		return s.GetContext(tx.ctx, dest, args...)
	}
	return tx.tx.GetContext(tx.ctx, dest, query, args...)
}

func (tx *Tx) sel(dest any, query string, args ...any) error {
	if s := tx.cached(query); s != nil {
		return s.SelectContext(tx.ctx, dest, args...)
	}
	return tx.tx.SelectContext(tx.ctx, dest, query, args...)
}

func (tx *Tx) queryx(query string, args ...any) (*sqlx.Rows, error) {
	if s := tx.cached(query); s != nil {
		return s.QueryxContext(tx.ctx, args...)
	}
	return tx.tx.QueryxContext(tx.ctx, query, args...)
}

func (tx *Tx) queryRow(query string, args ...any) *sqlx.Row {
	if s := tx.cached(query); s != nil {
		return s.QueryRowxContext(tx.ctx, args...)
	}
	return tx.tx.QueryRowxContext(tx.ctx, query, args...)
}
