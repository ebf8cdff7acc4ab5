package transfer

import "github.com/esctl/esctl/estype"

// Import checkpoints (Imports), declared in package estype.
type (
	ImportCheckpoint = estype.ImportCheckpoint
	CheckpointKind   = estype.CheckpointKind
	CheckpointMode   = estype.CheckpointMode
)

// Checkpoint kinds and modes.
const (
	CheckpointEvents     = estype.CheckpointEvents
	CheckpointSecrets    = estype.CheckpointSecrets
	CheckpointManual     = estype.CheckpointManual
	CheckpointAuto       = estype.CheckpointAuto
	CheckpointAutoStaged = estype.CheckpointAutoStaged
)
