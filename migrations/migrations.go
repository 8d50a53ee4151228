// Package migrations holds the manifest's schema as goose SQL migrations,
// embedded in the binary. The schema is defined here and nowhere else: the
// manifest package runs these files, in order, under a file lock in the cache
// directory, the first time any process opens a directory at an older version.
package migrations

import "embed"

// FS holds the migration files, named NNNNN_description.sql.
//
//go:embed *.sql
var FS embed.FS
