package driver

import "context"

// Consumers is an engine's side of durable consumers (package consumer):
// the rows of esctl_consumers (one per member of a group: checkpoint and
// lease) and esctl_parked_events. Each operation is one statement or one
// short transaction of its own, outside the store lock; package consumer
// owns every rule (who may take a lease, when a checkpoint moves, what a
// reset or a resize may do).
//
// Clocks: lease times are milliseconds since the epoch. An engine whose
// consumers may run on several machines (PostgreSQL) uses the server's
// clock (clock_timestamp()) and ignores the Now fields; an engine on one
// machine (SQLite) uses Now.
type Consumers interface {
	// CreateConsumer inserts the rows of members 0..Members-1 of a
	// consumer at Position, all at once, when the consumer has no row;
	// created is false (nothing written) when it has one.
	CreateConsumer(ctx context.Context, p *CreateConsumerParams) (created bool, err error)
	// ListConsumers returns the rows of one consumer (Name) or of every
	// consumer (Name ""), ordered by name and member, with the engine's
	// clock as read by the same statement.
	ListConsumers(ctx context.Context, name string) (*ConsumerList, error)
	// TakeLease gives the lease of a member to Holder until the engine's
	// clock plus TTL when it is free: held by nobody, by Holder already,
	// or past its lease_until; with Renew, only when Holder holds it (a
	// lease that a reset cleared, or that another holder took, is not
	// taken back). It returns the row (taken or not: Holder then names who
	// holds it), or nil when the member has no row.
	TakeLease(ctx context.Context, p *LeaseParams) (row *ConsumerRow, taken bool, err error)
	// ReleaseLease frees a member's lease when Holder holds it.
	ReleaseLease(ctx context.Context, p *LeaseParams) error
	// SaveCheckpoint sets a member's position when Holder holds its lease
	// (the fence: after another instance took the lease over, or a reset
	// or resize cleared it, nothing is written and saved is false).
	SaveCheckpoint(ctx context.Context, p *CheckpointParams) (saved bool, err error)
	// ResetConsumer sets every member's position and clears every lease
	// of a consumer; n is the number of rows changed.
	ResetConsumer(ctx context.Context, p *ResetConsumerParams) (n int, err error)
	// ResizeConsumer replaces a consumer's rows by Members rows at
	// Position, without leases, in one transaction.
	ResizeConsumer(ctx context.Context, p *CreateConsumerParams) error
	// DeleteConsumer deletes a consumer's rows, parked events and
	// instances; n is the number of member rows deleted.
	DeleteConsumer(ctx context.Context, name string) (n int, err error)

	// Heartbeat records that instance Holder of consumer Name is alive
	// until the engine's clock plus TTL (esctl_consumer_instances),
	// forgets the instances of Name whose time ran out, and returns the
	// live instances of Name (Holder among them) with the engine's clock,
	// ordered by instance.
	Heartbeat(ctx context.Context, p *InstanceParams) (*InstanceList, error)
	// LeaveGroup forgets instance Holder of consumer Name.
	LeaveGroup(ctx context.Context, p *InstanceParams) error

	// ParkEvent records an event a handler failed on, or updates its row
	// (error, attempts added, replay cleared) when it is parked already.
	ParkEvent(ctx context.Context, p *ParkedEvent) error
	// ListParked returns a consumer's parked events by position, after
	// After, at most Limit (0: all); ReplayOnly keeps those with a replay
	// request.
	ListParked(ctx context.Context, p *ListParkedParams) ([]ParkedEvent, error)
	// CountParked returns the number of parked events of each consumer
	// that has any.
	CountParked(ctx context.Context) (map[string]int64, error)
	// RequestReplay sets the replay flag of a consumer's parked events
	// (of those at Positions, or of all when Positions is nil); n is the
	// number of rows flagged.
	RequestReplay(ctx context.Context, p *RequestReplayParams) (n int, err error)
	// UnparkEvent deletes a parked event's row; found is false when there
	// was none.
	UnparkEvent(ctx context.Context, name string, position int64) (found bool, err error)

	// BeginConsumerTx starts a transaction on the store's database for a
	// handler that writes its own tables and the checkpoint together.
	// SQLite: it holds the write lock from its start (BEGIN IMMEDIATE on
	// the writer connection), so appends wait for it.
	BeginConsumerTx(ctx context.Context) (ConsumerTx, error)
}

// ConsumerTx is a handler's transaction. The caller ends it with Commit
// or Rollback; after Commit or Rollback it is unusable.
type ConsumerTx interface {
	// Raw is the engine's transaction handed to the handler: pgx.Tx on
	// PostgreSQL, *sql.Tx on SQLite.
	Raw() any
	// SaveCheckpoint is Consumers.SaveCheckpoint inside the transaction.
	SaveCheckpoint(ctx context.Context, p *CheckpointParams) (saved bool, err error)
	// ParkEvent is Consumers.ParkEvent inside the transaction.
	ParkEvent(ctx context.Context, p *ParkedEvent) error
	// UnparkEvent is Consumers.UnparkEvent inside the transaction.
	UnparkEvent(ctx context.Context, name string, position int64) (found bool, err error)
	// Commit commits. A COMMIT whose outcome is lost is
	// eventstore.ErrOutcomeUnknown.
	Commit(ctx context.Context) error
	// Rollback rolls back; it is a no-op after Commit.
	Rollback(ctx context.Context) error
}

// CreateConsumerParams are the arguments of CreateConsumer and
// ResizeConsumer.
type CreateConsumerParams struct {
	Name     string
	Members  int
	Position int64
	Now      int64 // ms; updated_at
}

// ConsumerList is the result of ListConsumers.
type ConsumerList struct {
	Rows []ConsumerRow
	Now  int64 // the engine's clock (ms) when the rows were read
}

// ConsumerRow is one member's row.
type ConsumerRow struct {
	Name       string
	Member     int
	Members    int
	Position   int64  // the checkpoint: every event up to it was handled
	Holder     string // the lease holder, "" none
	LeaseUntil int64  // ms
	UpdatedAt  int64  // ms, when the checkpoint last moved
}

// LeaseParams are the arguments of TakeLease and ReleaseLease.
type LeaseParams struct {
	Name   string
	Member int
	Holder string
	TTL    int64 // ms (TakeLease)
	Now    int64 // ms
	Renew  bool  // TakeLease: only extend a lease Holder holds
}

// InstanceParams are the arguments of Heartbeat and LeaveGroup.
type InstanceParams struct {
	Name   string
	Holder string
	TTL    int64 // ms (Heartbeat)
	Now    int64 // ms
}

// InstanceList is the result of Heartbeat.
type InstanceList struct {
	Instances []string // the live instances, ordered
	Now       int64    // the engine's clock (ms) when they were read
}

// CheckpointParams are the arguments of SaveCheckpoint.
type CheckpointParams struct {
	Name     string
	Member   int
	Holder   string
	Position int64
	Now      int64 // ms; updated_at
}

// ResetConsumerParams are the arguments of ResetConsumer.
type ResetConsumerParams struct {
	Name     string
	Position int64
	Now      int64 // ms
}

// ParkedEvent is a row of esctl_parked_events.
type ParkedEvent struct {
	Name        string
	Position    int64
	AggregateID string
	Error       string
	Attempts    int   // ParkEvent adds them to a parked row's
	ParkedAt    int64 // ms
	Replay      bool  // a replay is requested (read only)
}

// ListParkedParams are the arguments of ListParked.
type ListParkedParams struct {
	Name       string
	After      int64
	Limit      int
	ReplayOnly bool
}

// RequestReplayParams are the arguments of RequestReplay.
type RequestReplayParams struct {
	Name      string
	Positions []int64 // nil: every parked event of Name
}
