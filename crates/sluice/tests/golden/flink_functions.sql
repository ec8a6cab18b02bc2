-- golden: parallelism 1 only (aggregate updates depend on arrival order)
-- Flink's functions: IF, TO_TIMESTAMP with a Java pattern, TO_TIMESTAMP_LTZ, DATE_FORMAT,
-- and AVG of an INT column, which is an INT (truncated) in Flink.
CREATE TABLE plays (content_id STRING, user_id STRING, duration_ms INT)
WITH ('connector' = 'filesystem', 'path' = '${DATA}/plays.jsonl', 'format' = 'json');

CREATE TABLE o (
  content_id STRING, kind STRING, parsed TIMESTAMP(3), custom TIMESTAMP(3), bad TIMESTAMP(3),
  from_epoch TIMESTAMP_LTZ(3), formatted STRING
) WITH ('connector' = 'print', 'print-identifier' = 'fn');

CREATE TABLE t (qty BIGINT)
WITH ('connector' = 'filesystem', 'path' = '${DATA}/types.jsonl', 'format' = 'json');

CREATE TABLE avgs (avg_qty BIGINT, avg_exact DOUBLE, n BIGINT)
WITH ('connector' = 'print', 'print-identifier' = 'avg');

EXECUTE STATEMENT SET BEGIN
INSERT INTO o
SELECT
  content_id,
  IF(duration_ms >= 100, 'long', 'short'),
  TO_TIMESTAMP('2024-05-01 10:00:00'),
  TO_TIMESTAMP('01/05/2024 07:30', 'dd/MM/yyyy HH:mm'),
  TO_TIMESTAMP('not a time'),
  TO_TIMESTAMP_LTZ(1714557600123, 3),
  DATE_FORMAT(TO_TIMESTAMP('2024-05-01 10:00:00'), 'yyyy/MM/dd HH:mm:ss.SSS')
FROM plays
WHERE user_id = 'u1';

-- A global aggregate (no GROUP BY) runs in one subtask.
INSERT INTO avgs
SELECT AVG(qty), AVG(qty * 1.0), COUNT(*)
FROM t;
END;
