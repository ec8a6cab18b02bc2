-- Producer for examples/clickstream-kafka.sql: the click events of examples/data/clicks.jsonl into
-- the Kafka topic `clicks`, as Avro registered in the schema registry (subject `clicks-value`).
--
--   KAFKA_BOOTSTRAP=127.0.0.1:19092 SCHEMA_REGISTRY_URL=http://127.0.0.1:18081 \
--     sluice run examples/kafka/clickstream-produce.sql

CREATE TABLE click_file (
  eventTime  TIMESTAMP_LTZ(3),
  userId     STRING,
  clickId    STRING,
  eventType  STRING,
  searchId   STRING,
  productId  STRING,
  `query`    STRING,
  referrer   STRING,
  metadata   ROW<device STRING, browser STRING>
) WITH (
  'connector' = 'filesystem',
  'path' = 'examples/data/clicks.jsonl',
  'format' = 'json',
  'json.timestamp-format.standard' = 'ISO-8601'
);

CREATE TABLE clicks (
  eventTime  TIMESTAMP_LTZ(3),
  userId     STRING,
  clickId    STRING,
  eventType  STRING,
  searchId   STRING,
  productId  STRING,
  `query`    STRING,
  referrer   STRING,
  metadata   ROW<device STRING, browser STRING>
) WITH (
  'connector' = 'kafka',
  'topic' = 'clicks',
  'properties.bootstrap.servers' = '${KAFKA_BOOTSTRAP}',
  'key.format' = 'raw',
  'key.fields' = 'userId',
  'value.format' = 'avro-confluent',
  'value.avro-confluent.url' = '${SCHEMA_REGISTRY_URL}'
);

INSERT INTO clicks SELECT * FROM click_file;
