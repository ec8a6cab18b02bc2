-- golden: parallelism 1 only (the global count's intermediate values depend on subtask interleaving)
-- Random datagen values stay within min/max, strings have the asked length, null-rate 1 is all NULL.
SET 'table.exec.mini-batch.enabled' = 'true';
CREATE TABLE gen (
  x INT,
  s STRING,
  n DOUBLE
) WITH (
  'connector' = 'datagen',
  'rows-per-second' = '1000000',
  'number-of-rows' = '5000',
  'fields.x.min' = '10', 'fields.x.max' = '20',
  'fields.s.length' = '7',
  'fields.n.null-rate' = '1.0'
);
CREATE TABLE o (rows_seen BIGINT, x_in_range BOOLEAN, len_ok BOOLEAN, all_null BOOLEAN)
WITH ('connector' = 'print', 'print-identifier' = 'check');
INSERT INTO o
SELECT COUNT(*), MIN(x) >= 10 AND MAX(x) <= 20, MIN(CHAR_LENGTH(s)) = 7 AND MAX(CHAR_LENGTH(s)) = 7, COUNT(n) = 0
FROM gen;
