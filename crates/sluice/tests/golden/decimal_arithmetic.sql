-- Flink's DECIMAL result types, visible in the printed scale:
--   BIGINT / 1000.0                -> DECIMAL(26, 6)
--   DECIMAL(26, 6) / INT           -> DECIMAL(37, 17)
--   DECIMAL(37, 17) * INT          -> 48 digits, adjusted to DECIMAL(38, 7)
--   ROUND(DECIMAL(38, 7), 2)       -> DECIMAL(34, 2), HALF_UP
--   DECIMAL(10, 2) + DECIMAL(5, 3) -> DECIMAL(12, 3);  DECIMAL(10, 2) % 3 -> DECIMAL(7, 2)
CREATE TABLE e (duration_ms BIGINT, length_seconds INT, price DECIMAL(10, 2), fee DECIMAL(5, 3))
WITH ('connector' = 'filesystem', 'path' = '${DATA}/decimals.jsonl', 'format' = 'json');

CREATE TABLE o (
  secs DECIMAL(26, 6), ratio DECIMAL(37, 17), pct DECIMAL(38, 7), pct2 DECIMAL(34, 2),
  total DECIMAL(12, 3), rem DECIMAL(7, 2), int_div INT, halves DOUBLE
) WITH ('connector' = 'print');

INSERT INTO o
SELECT
  duration_ms / 1000.0,
  (duration_ms / 1000.0) / length_seconds,
  (duration_ms / 1000.0) / length_seconds * 100,
  ROUND((duration_ms / 1000.0) / length_seconds * 100, 2),
  price + fee,
  price % 3,
  length_seconds / 7,
  ROUND(length_seconds / 2.0, 0)
FROM e;
