-- Seed 000, the click stream: every product_click gets the searchId of the same user's latest
-- earlier search (an event-time temporal join on a versioned view), else 'enriched-<userId>', and the
-- enrichment rate per minute. The statements are the seed's Flink SQL with a file in place of Kafka.
--
--   sluice run examples/clickstream.sql
--
-- A click is joined once the watermarks of both sides pass its time, so a search that arrives a
-- little after a click (out of order, within the 2-second watermark delay) still counts if it
-- happened before the click.

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
  'connector' = 'filesystem',
  'path' = 'examples/data/clicks.jsonl',
  'format' = 'json',
  'json.timestamp-format.standard' = 'ISO-8601'
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
) WITH ('connector' = 'print', 'print-identifier' = 'enriched');

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
