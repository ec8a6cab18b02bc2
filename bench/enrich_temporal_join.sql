-- Benchmark (seed 000): every product_click enriched with the user's latest earlier search through an
-- event-time temporal join on a deduplicating view -> blackhole. Input: bench/gen_clicks.py.
CREATE TABLE clicks (
  eventTime  TIMESTAMP_LTZ(3),
  userId     STRING,
  clickId    STRING,
  eventType  STRING,
  searchId   STRING,
  productId  STRING,
  `query`    STRING,
  referrer   STRING,
  sessionId  STRING,
  metadata   ROW<device STRING, browser STRING>,
  WATERMARK FOR eventTime AS eventTime - INTERVAL '2' SECOND
) WITH (
  'connector' = 'filesystem',
  'path' = '${BENCH_CLICKS}',
  'format' = 'json',
  'json.timestamp-format.standard' = 'ISO-8601'
);

CREATE VIEW latest_search AS
SELECT userId, searchId, eventTime FROM (
  SELECT userId, searchId, eventTime,
         ROW_NUMBER() OVER (PARTITION BY userId ORDER BY eventTime DESC) AS rn
  FROM clicks WHERE eventType = 'search'
) WHERE rn = 1;

CREATE TABLE enriched (
  eventTime TIMESTAMP_LTZ(3),
  userId    STRING,
  clickId   STRING,
  searchId  STRING,
  productId STRING
) WITH ('connector' = 'blackhole');

INSERT INTO enriched
SELECT c.eventTime, c.userId, c.clickId, COALESCE(c.searchId, s.searchId, CONCAT('enriched-', c.userId)), c.productId
FROM clicks AS c
LEFT JOIN latest_search FOR SYSTEM_TIME AS OF c.eventTime AS s ON c.userId = s.userId
WHERE c.eventType = 'product_click';
