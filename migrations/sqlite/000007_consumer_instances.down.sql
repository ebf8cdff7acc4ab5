DROP TABLE IF EXISTS esctl_consumer_instances;
