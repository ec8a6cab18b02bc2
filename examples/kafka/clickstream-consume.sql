-- Consumer for examples/clickstream-kafka.sql: prints the enriched clicks committed so far
-- (read_committed, bounded: it ends at the topic's current end).
--
--   KAFKA_BOOTSTRAP=127.0.0.1:19092 SCHEMA_REGISTRY_URL=http://127.0.0.1:18081 \
--     sluice run examples/kafka/clickstream-consume.sql

CREATE TABLE enriched_clicks (
  eventTime  TIMESTAMP_LTZ(3),
  userId     STRING,
  clickId    STRING,
  eventType  STRING,
  searchId   STRING,
  productId  STRING,
  referrer   STRING
) WITH (
  'connector' = 'kafka',
  'topic' = 'enriched_clicks',
  'properties.bootstrap.servers' = '${KAFKA_BOOTSTRAP}',
  'scan.startup.mode' = 'earliest-offset',
  'scan.bounded.mode' = 'latest-offset',
  'value.format' = 'avro-confluent',
  'value.avro-confluent.url' = '${SCHEMA_REGISTRY_URL}'
);

CREATE TABLE shown (
  eventTime  TIMESTAMP_LTZ(3),
  userId     STRING,
  clickId    STRING,
  eventType  STRING,
  searchId   STRING,
  productId  STRING,
  referrer   STRING
) WITH ('connector' = 'print', 'print-identifier' = 'enriched');

INSERT INTO shown SELECT * FROM enriched_clicks;
