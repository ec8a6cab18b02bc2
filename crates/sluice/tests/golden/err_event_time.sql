-- Event-time mistakes get Flink's rules as clear errors: a window on a column without a watermark,
-- a versioned table without a primary key, a CUMULATE size that is not a multiple of the step.
CREATE TABLE t (k STRING, ts TIMESTAMP(3), v INT) WITH ('connector' = 'datagen', 'number-of-rows' = '1');
CREATE TABLE w (k STRING, ts TIMESTAMP(3), v INT, WATERMARK FOR ts AS ts) WITH ('connector' = 'datagen', 'number-of-rows' = '1');
CREATE TABLE o (k STRING, c BIGINT) WITH ('connector' = 'print');
INSERT INTO o SELECT k, COUNT(*) FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) GROUP BY k, window_start, window_end;
INSERT INTO o SELECT w.k, CAST(t.v AS BIGINT) FROM w JOIN t FOR SYSTEM_TIME AS OF w.ts ON w.k = t.k;
INSERT INTO o SELECT k, COUNT(*) FROM TABLE(CUMULATE(TABLE w, DESCRIPTOR(ts), INTERVAL '7' SECOND, INTERVAL '1' MINUTE)) GROUP BY k, window_start, window_end;
