-- The highest offset the broker acknowledged per partition to this database's relay. An
-- acknowledgement at or below it means the partition's log started again (the embedded broker
-- restarted empty): the relay then publishes every retained row again. Forgotten with the log.
CREATE TABLE outbox_high_water (
    topic        text    NOT NULL,
    partition    integer NOT NULL,
    kafka_offset bigint  NOT NULL,
    PRIMARY KEY (topic, partition)
);
