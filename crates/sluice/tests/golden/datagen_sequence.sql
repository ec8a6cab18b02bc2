-- datagen with a sequence field is bounded; the sequence is split across subtasks.
CREATE TABLE gen (
  id BIGINT,
  score INT
) WITH (
  'connector' = 'datagen',
  'rows-per-second' = '1000000',
  'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '12',
  'fields.score.min' = '5', 'fields.score.max' = '5'
);
CREATE TABLE o (id BIGINT, score INT, even BOOLEAN) WITH ('connector' = 'filesystem', 'path' = '${OUT}/gen', 'format' = 'json');
INSERT INTO o SELECT id, score, id % 2 = 0 FROM gen WHERE id > 2;
