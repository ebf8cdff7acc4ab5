// Package pgadmin holds the cluster-level SQL that test tooling needs
// (databases, not stores). It lives under adapters/ with the rest of the
// PostgreSQL SQL and imports nothing of the store, so that internal/testdb
// can use it without an import cycle through the adapter's own tests.
package pgadmin

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// CreateDatabase creates database name as a copy of template ("" means
// template0, an empty database).
func CreateDatabase(ctx context.Context, conn *pgx.Conn, name, template string) error {
	if template == "" {
		template = "template0"
	}
	_, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" TEMPLATE "+pgx.Identifier{template}.Sanitize())
	return err
}

// DropDatabase drops database name if it exists, ending its sessions.
func DropDatabase(ctx context.Context, conn *pgx.Conn, name string) error {
	_, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	return err
}
