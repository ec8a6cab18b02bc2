-- A query column whose type the sink cannot take, and an unknown type name.
CREATE TABLE plays (content_id STRING, duration_ms INT)
WITH ('connector' = 'filesystem', 'path' = '${DATA}/plays.jsonl', 'format' = 'json');
CREATE TABLE sink1 (content_id INT, duration_ms INT) WITH ('connector' = 'print');
CREATE TABLE sink2 (a STRNG) WITH ('connector' = 'print');

INSERT INTO sink1 SELECT content_id, duration_ms FROM plays;
