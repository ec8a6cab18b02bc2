-- Seed 000, the click stream, on Kafka: Avro click events in (Confluent Schema Registry), every
-- product_click enriched with the same user's latest earlier searchId (an event-time temporal join
-- on a versioned view) or 'enriched-<userId>', written as Avro to `enriched_clicks` exactly once
-- (Kafka transactions committed with checkpoints), and the enrichment rate per minute printed.
--
--   export KAFKA_BOOTSTRAP=127.0.0.1:19092 SCHEMA_REGISTRY_URL=http://127.0.0.1:18081
--   sluice run examples/kafka/clickstream-produce.sql     # clicks.jsonl -> topic clicks (Avro)
--   sluice run examples/clickstream-kafka.sql             # this pipeline (Ctrl-C takes a savepoint)
--   sluice run examples/kafka/clickstream-consume.sql     # prints enriched_clicks
--   examples/kafka/cleanup                                # deletes the topics and subjects
--
-- Against Confluent Cloud add to both Kafka tables (secrets from the environment):
--   'properties.security.protocol' = 'SASL_SSL', 'properties.sasl.mechanism' = 'PLAIN',
--   'properties.sasl.username' = '${KAFKA_API_KEY}', 'properties.sasl.password' = '${KAFKA_API_SECRET}',
--   'value.avro-confluent.basic-auth.credentials-source' = 'USER_INFO',
--   'value.avro-confluent.basic-auth.user-info' = '${SR_API_KEY}:${SR_API_SECRET}'

SET 'execution.checkpointing.interval' = '2s';
SET 'execution.checkpointing.dir' = 'target/checkpoints/clickstream-kafka';

CREATE TABLE input_topic (
  eventTime  TIMESTAMP_LTZ(3),
  userId     STRING,
  clickId    STRING,
  eventType  STRING,
  searchId   STRING,
  productId  STRING,
  `query`    STRING,
  referrer   STRING,
  metadata   ROW<device STRING, browser STRING>,
  WATERMARK FOR eventTime AS eventTime - INTERVAL '2' SECOND
) WITH (
  'connector' = 'kafka',
  'topic' = 'clicks',
  'properties.bootstrap.servers' = '${KAFKA_BOOTSTRAP}',
  'properties.group.id' = 'clickstream-enrichment',
  'scan.startup.mode' = 'earliest-offset',
  'value.format' = 'avro-confluent',
  'value.avro-confluent.url' = '${SCHEMA_REGISTRY_URL}',
  'scan.bad-records' = 'dead-letter',
  'scan.bad-records.topic' = 'clicks-dead-letter'
);

-- The latest search per user, as a versioned view (Flink's deduplication on event time).
CREATE VIEW user_search_state AS
SELECT userId, searchId, eventTime
FROM (
  SELECT userId, searchId, eventTime,
         ROW_NUMBER() OVER (PARTITION BY userId ORDER BY eventTime DESC) AS rn
  FROM input_topic
  WHERE eventType = 'search'
)
WHERE rn = 1;

CREATE VIEW enriched_clicks AS
SELECT
  c.eventTime,
  c.userId,
  c.clickId,
  c.eventType,
  COALESCE(c.searchId, s.searchId, CONCAT('enriched-', c.userId)) AS searchId,
  s.searchId IS NOT NULL AS from_search,
  c.productId,
  c.referrer
FROM input_topic c
LEFT JOIN user_search_state FOR SYSTEM_TIME AS OF c.eventTime AS s
  ON c.userId = s.userId
WHERE c.eventType = 'product_click';

CREATE TABLE output_topic (
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
  'key.format' = 'raw',
  'key.fields' = 'userId',
  'value.format' = 'avro-confluent',
  'value.avro-confluent.url' = '${SCHEMA_REGISTRY_URL}',
  'sink.delivery-guarantee' = 'exactly-once',
  'sink.transactional-id-prefix' = 'clickstream-enrichment'
);

CREATE TABLE enrichment_rate (
  window_start TIMESTAMP(3),
  window_end   TIMESTAMP(3),
  clicks       BIGINT,
  enriched     BIGINT,
  rate_pct     DECIMAL(38, 2)
) WITH ('connector' = 'print', 'print-identifier' = 'rate');

EXECUTE STATEMENT SET
BEGIN
  INSERT INTO output_topic
  SELECT eventTime, userId, clickId, eventType, searchId, productId, referrer FROM enriched_clicks;

  INSERT INTO enrichment_rate
  SELECT window_start, window_end, COUNT(*), COUNT(*) FILTER (WHERE from_search),
         ROUND(COUNT(*) FILTER (WHERE from_search) * 100.0 / COUNT(*), 2)
  FROM TABLE(TUMBLE(TABLE enriched_clicks, DESCRIPTOR(eventTime), INTERVAL '1' MINUTE))
  GROUP BY window_start, window_end;
END;
