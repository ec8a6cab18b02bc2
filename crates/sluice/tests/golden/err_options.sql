-- Unknown and missing connector options are listed by name, with the connector's known options.
CREATE TABLE src (a INT) WITH ('connector' = 'filesystem', 'format' = 'json');
CREATE TABLE dst (a INT) WITH ('connector' = 'print', 'print-identifer' = 'x');
CREATE TABLE gen (a INT) WITH ('connector' = 'datagen', 'rows-per-second' = 'fast');
CREATE TABLE nope (a INT) WITH ('connector' = 'kafak');
INSERT INTO dst SELECT a FROM src;
INSERT INTO dst SELECT a FROM gen;
INSERT INTO dst SELECT a FROM nope;
