-- INSERT with a column list: the other sink columns are NULL; the query's types are cast to the
-- sink's (INT to BIGINT, DECIMAL to DOUBLE) as Flink's implicit casts allow.
CREATE TABLE plays (content_id STRING, user_id STRING, duration_ms INT)
WITH ('connector' = 'filesystem', 'path' = '${DATA}/plays.jsonl', 'format' = 'json');

CREATE TABLE o (user_id STRING, note STRING, ms BIGINT, seconds DOUBLE)
WITH ('connector' = 'filesystem', 'path' = '${OUT}/o', 'format' = 'json');

INSERT INTO o (seconds, user_id, ms)
SELECT duration_ms / 1000.0, user_id, duration_ms FROM plays WHERE content_id = 'a';
