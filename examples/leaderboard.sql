-- Seeds 001, 003 and 004: engagement events enriched with their content row (type, length), as it
-- was at the time of the event (an event-time temporal join on the versioned `content` table), with
-- engagement_seconds and a NULL-safe engagement_pct; and the "most engaging content, last 10
-- minutes" leaderboard: the top 10 content by engagement seconds over HOP(1 minute, 10 minutes).
--
--   sluice run examples/leaderboard.sql
--
-- c-101 gets a new version at 10:03 (re-cut to 20 minutes): events before and after it use the
-- length valid at their own time. c-113 has no length and c-114 a length of 0: their percentage is NULL.

CREATE TABLE engagement_events (
  id           BIGINT,
  content_id   STRING,
  user_id      STRING,
  event_type   STRING,
  event_ts     TIMESTAMP_LTZ(3),
  duration_ms  INT,
  device       STRING,
  WATERMARK FOR event_ts AS event_ts - INTERVAL '5' SECOND
) WITH (
  'connector' = 'filesystem',
  'path' = 'examples/data/engagements.jsonl',
  'format' = 'json',
  'json.timestamp-format.standard' = 'ISO-8601'
);

-- The content catalogue as a versioned table: one version per row, valid from updated_at.
CREATE TABLE content (
  id              STRING,
  slug            STRING,
  title           STRING,
  content_type    STRING,
  length_seconds  INT,
  updated_at      TIMESTAMP_LTZ(3),
  PRIMARY KEY (id) NOT ENFORCED,
  WATERMARK FOR updated_at AS updated_at
) WITH (
  'connector' = 'filesystem',
  'path' = 'examples/data/content.jsonl',
  'format' = 'json',
  'json.timestamp-format.standard' = 'ISO-8601'
);

CREATE VIEW enriched AS
SELECT
  e.id,
  e.content_id,
  e.user_id,
  e.event_type,
  e.event_ts,
  c.content_type,
  c.length_seconds,
  e.duration_ms / 1000.0 AS engagement_seconds,
  CASE
    WHEN c.length_seconds > 0 THEN ROUND((e.duration_ms / 1000.0) / c.length_seconds * 100, 2)
    ELSE NULL
  END AS engagement_pct
FROM engagement_events e
LEFT JOIN content FOR SYSTEM_TIME AS OF e.event_ts AS c
  ON e.content_id = c.id
WHERE e.event_type IN ('play', 'pause', 'finish');

CREATE TABLE enriched_engagements (
  id                 BIGINT,
  content_id         STRING,
  event_type         STRING,
  content_type       STRING,
  length_seconds     INT,
  engagement_seconds DECIMAL(26, 6),
  engagement_pct     DECIMAL(38, 2)
) WITH ('connector' = 'print', 'print-identifier' = 'enriched');

CREATE TABLE leaderboard (
  window_start   TIMESTAMP(3),
  window_end     TIMESTAMP(3),
  content_id     STRING,
  total_seconds  DECIMAL(38, 6),
  events         BIGINT,
  ranking        BIGINT
) WITH ('connector' = 'print', 'print-identifier' = 'top10');

EXECUTE STATEMENT SET
BEGIN
  INSERT INTO enriched_engagements
  SELECT id, content_id, event_type, content_type, length_seconds, engagement_seconds, engagement_pct
  FROM enriched;

  INSERT INTO leaderboard
  SELECT window_start, window_end, content_id, total_seconds, events, ranking
  FROM (
    SELECT *, ROW_NUMBER() OVER (
        PARTITION BY window_start, window_end
        ORDER BY total_seconds DESC, content_id) AS ranking
    FROM (
      SELECT window_start, window_end, content_id,
             SUM(engagement_seconds) AS total_seconds, COUNT(*) AS events
      FROM TABLE(HOP(TABLE enriched, DESCRIPTOR(event_ts), INTERVAL '1' MINUTE, INTERVAL '10' MINUTE))
      GROUP BY window_start, window_end, content_id
    )
  )
  WHERE ranking <= 10;
END;
