// Package db owns plaudhook's SQLite database: opening it with the pragmas that make an
// acknowledged delivery durable, applying the embedded goose migrations, the group-commit writer
// that the webhook path goes through, and the record types and queries of every table.
//
// All SQL lives here. The package imports nothing else from plaudhook; the web layer declares the
// interfaces it needs and *DB satisfies them.
//
// NOTE: SQLite has one writer. Every write goes through the single connection of DB.w (the
// ingest batch writer included); reads use a separate pool. Do not raise the writer pool above
// one connection: concurrent writers only trade throughput for "database is locked".
package db
