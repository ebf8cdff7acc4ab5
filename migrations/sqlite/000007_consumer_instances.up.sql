-- The live instances of each durable consumer (package consumer): an
-- instance that balances a group's members over the instances running it
-- renews its row every LeaseTTL/4 until seen_until (milliseconds since the
-- epoch, a SQLite store is on one machine: one clock); a row past it is an
-- instance gone. The instances count themselves here, not in
-- esctl_consumers, because an instance that holds no lease yet (it just
-- joined) must be seen for the others to hand members over to it.
CREATE TABLE esctl_consumer_instances (
    name       TEXT    NOT NULL,
    instance   TEXT    NOT NULL,
    seen_until INTEGER NOT NULL,
    PRIMARY KEY (name, instance)
) STRICT;
