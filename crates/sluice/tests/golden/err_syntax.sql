CREATE TABLE plays (content_id STRING, duration_ms INT)
WITH ('connector' = 'filesystem', 'path' = '${DATA}/plays.jsonl', 'format' = 'json');
CREATE TABLE dst (a STRING) WITH ('connector' = 'print');

INSERT INTO dst SELEC content_id FROM plays;
INSERT INTO dst SELECT content_id FROM nowhere;
