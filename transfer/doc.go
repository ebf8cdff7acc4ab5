// Package transfer moves events into, out of and between stores, for
// operators and the tools they run (esctl is built on it); an application's
// own code needs package eventstore only.
//
//   - ExportEvents writes a store's events as NDJSON (docs/ndjson-format.md)
//     from one consistent snapshot, with a cursor to resume from.
//   - ImportEvents reads NDJSON into a store in batches, each committed with
//     its checkpoint (byte offset, lines, the SHA-256 state of the source's
//     prefix), so that an interrupted import resumes exactly; MaintenanceAuto
//     replaces the store's events (staged, swapped in at the end). Imports
//     lists the checkpoints, AbortImport undoes an unfinished one. DryRun
//     runs the same transactions without writing.
//   - BeginIncrementalImport, PushIncrementalImport, CommitIncrementalImport
//     and RollbackIncrementalImport (IncrementalImport in one call,
//     IncrementalImportFrom from NDJSON) append events without versions,
//     dropping those already stored (reSolve's incremental import).
//   - ExportSecrets and ImportSecrets move the secrets table.
//   - Copy copies one store into another (any engines), resuming where an
//     earlier copy stopped; Verify checks a store's invariants against its
//     rows.
//
// Package backup builds backups and restores on the same streams.
package transfer
