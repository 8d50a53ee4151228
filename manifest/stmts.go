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
	prep func(ctx context.Context, query string) (*sqlx.Stmt, error)
	mu   sync.Mutex
	m    map[string]*sqlx.Stmt
}

// newStmtCache caches the statements prep prepares: a pool's (then
// database/sql prepares each on every connection it runs on) or one held
// connection's.
func newStmtCache(prep func(ctx context.Context, query string) (*sqlx.Stmt, error)) *stmtCache {
	return &stmtCache{prep: prep, m: map[string]*sqlx.Stmt{}}
}

func (c *stmtCache) get(ctx context.Context, query string) (*sqlx.Stmt, error) {
	c.mu.Lock()
	s := c.m[query]
	c.mu.Unlock()
	if s != nil {
		return s, nil
	}
	s, err := c.prep(ctx, query)
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

// Transaction helpers. A write transaction runs on the writer's held
// connection, so its statements are prepared on that connection, once, and
// run as they are: even mid-transaction, a statement not prepared yet can
// be.

func (tx *Tx) stmt(query string) (*sqlx.Stmt, error) { return tx.m.ws.get(tx.ctx, query) }

func (tx *Tx) exec(query string, args ...any) (sql.Result, error) {
	s, err := tx.stmt(query)
	if err != nil {
		return nil, err
	}
	return s.ExecContext(tx.ctx, args...)
}

func (tx *Tx) get(dest any, query string, args ...any) error {
	s, err := tx.stmt(query)
	if err != nil {
		return err
	}
	return s.GetContext(tx.ctx, dest, args...)
}

func (tx *Tx) sel(dest any, query string, args ...any) error {
	s, err := tx.stmt(query)
	if err != nil {
		return err
	}
	return s.SelectContext(tx.ctx, dest, args...)
}

func (tx *Tx) queryx(query string, args ...any) (*sqlx.Rows, error) {
	s, err := tx.stmt(query)
	if err != nil {
		return nil, err
	}
	return s.QueryxContext(tx.ctx, args...)
}
