CREATE TABLE plays (content_id STRING, duration_ms INT)
WITH ('connector' = 'filesystem', 'path' = '${DATA}/plays.jsonl', 'format' = 'json');
CREATE TABLE totals (content_id STRING, total BIGINT)
WITH ('connector' = 'filesystem', 'path' = '${OUT}/t', 'format' = 'json');

INSERT INTO totals
SELECT content_id, SUM(duration_ms) FROM plays GROUP BY content_id;
