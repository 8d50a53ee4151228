package main

import (
	"database/sql"
	"path/filepath"
	"testing"

	_ "modernc.org/sqlite"
)

// BenchmarkSQLiteFloor measures the least a put published by a SQLite
// transaction can cost with possum's SQLite (modernc.org/sqlite, pure Go):
// BEGIN IMMEDIATE, one INSERT into a table with a unique key, COMMIT, in WAL
// mode with synchronous=NORMAL (no fsync per commit), one connection. A
// possum put does more than this (its row has three indexes and a trigger;
// a replacing put also deletes the old row and records its dead extent), so
// this is the floor that commentary.md compares squirrel's put with.
//
//	go test -C bench -run '^$' -bench SQLiteFloor -benchtime 20000x -count 5
func BenchmarkSQLiteFloor(b *testing.B) {
	dsn := "file:" + filepath.Join(b.TempDir(), "floor.db") +
		"?_txlock=immediate&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(`CREATE TABLE t (id INTEGER PRIMARY KEY, k BLOB NOT NULL UNIQUE, v INTEGER)`); err != nil {
		b.Fatal(err)
	}
	ins, err := db.Prepare(`INSERT INTO t (k, v) VALUES (?, ?)`)
	if err != nil {
		b.Fatal(err)
	}
	defer ins.Close()
	key := make([]byte, 16)
	for i := 0; b.Loop(); i++ {
		key[0], key[1], key[2], key[3] = byte(i), byte(i>>8), byte(i>>16), byte(i>>24)
		tx, err := db.Begin()
		if err != nil {
			b.Fatal(err)
		}
		if _, err := tx.Stmt(ins).Exec(key, i); err != nil {
			b.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}
}
