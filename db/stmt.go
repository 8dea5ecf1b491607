package db

import (
	"context"
	"database/sql"
	"sync"
)

// stmtCache keeps the ingest writer's statements prepared on the writer connection, so a
// delivery costs SQLite no parsing or planning: the hot path of group commit runs several
// statements per delivery, and preparing each anew cost about a quarter of the writer's time.
//
// A statement is prepared the first time it is asked for outside a transaction; inside one the
// only writer connection is busy, so a miss runs unprepared once and is prepared before the next
// transaction begins (prepareWanted).
type stmtCache struct {
	mu     sync.Mutex
	stmts  map[string]*sql.Stmt // mu guards stmts and wanted
	wanted map[string]bool
}

// stmt returns query prepared for tx, or nil when it is not prepared yet.
func (db *DB) stmt(ctx context.Context, tx *sql.Tx, query string) *sql.Stmt {
	c := &db.stmts
	c.mu.Lock()
	s := c.stmts[query]
	if s == nil {
		if c.wanted == nil {
			c.wanted = map[string]bool{}
		}
		c.wanted[query] = true
	}
	c.mu.Unlock()
	if s == nil {
		return nil
	}
	// Bound to the transaction's connection: the statement prepared there is reused.
	return tx.StmtContext(ctx, s)
}

// txExec runs query in tx through its prepared statement when there is one.
func (db *DB) txExec(ctx context.Context, tx *sql.Tx, query string, args ...any) (sql.Result, error) {
	if s := db.stmt(ctx, tx, query); s != nil {
		return s.ExecContext(ctx, args...)
	}
	return tx.ExecContext(ctx, query, args...)
}

// txQueryRow runs a one-row query in tx through its prepared statement when there is one.
func (db *DB) txQueryRow(ctx context.Context, tx *sql.Tx, query string, args ...any) *sql.Row {
	if s := db.stmt(ctx, tx, query); s != nil {
		return s.QueryRowContext(ctx, args...)
	}
	return tx.QueryRowContext(ctx, query, args...)
}

// prepareWanted prepares, on the writer connection, the statements asked for since the last
// call. The writer calls it between transactions. A statement that fails to prepare (a schema
// it does not match yet) is simply asked for again later.
func (db *DB) prepareWanted(ctx context.Context) {
	c := &db.stmts
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.wanted) == 0 {
		return
	}
	if c.stmts == nil {
		c.stmts = map[string]*sql.Stmt{}
	}
	for q := range c.wanted {
		s, err := db.w.PrepareContext(ctx, q)
		if err != nil {
			continue
		}
		c.stmts[q] = s
		delete(c.wanted, q)
	}
}

// closeStmts closes every prepared statement; Close calls it before closing the connection.
func (db *DB) closeStmts() {
	c := &db.stmts
	c.mu.Lock()
	defer c.mu.Unlock()
	for q, s := range c.stmts {
		s.Close()
		delete(c.stmts, q)
	}
}
