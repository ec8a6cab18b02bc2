//! The command line as users drive it: exit codes, messages, `explain` text, the run summary,
//! bad-record handling and graceful stop on SIGTERM.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn sluice(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice")).args(args).env("SLUICE_LOG", "warn").output().expect("run sluice")
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write file");
    p
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

/// The `id` of every row in the JSON part files under `dir`, sorted.
fn output_ids(dir: &Path) -> Vec<u64> {
    let mut ids = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        for line in std::fs::read_to_string(e.path()).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            ids.push(v["id"].as_u64().unwrap());
        }
    }
    ids.sort();
    ids
}

#[test]
fn validate_is_silent_and_succeeds_on_a_valid_file() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/engagement.sql");
    let out = sluice(&["validate", examples.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
}

#[test]
fn validate_reports_file_line_col_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let sql = write(
        dir.path(),
        "p.sql",
        "CREATE TABLE clicks (userId STRING) WITH ('connector' = 'datagen', 'number-of-rows' = '1');\n\
         CREATE TABLE o (u STRING) WITH ('connector' = 'print');\n\
         INSERT INTO o\nSELECT userid FROM clicks;\n",
    );
    let out = sluice(&["validate", sql.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    let want = format!("{}:4:8: unknown column 'userid' in 'clicks' (did you mean 'userId'?)", sql.display());
    assert!(err.starts_with(&want), "{err}");
}

#[test]
fn usage_errors_exit_2_and_help_documents_exit_codes() {
    assert_eq!(sluice(&["run"]).status.code(), Some(2));
    assert_eq!(sluice(&["frobnicate"]).status.code(), Some(2));
    let help = text(&sluice(&["--help"]).stdout);
    assert!(
        help.contains("Exit codes: 0 success, 1 invalid SQL or options, 2 bad command line, 3 the pipeline failed"),
        "{help}"
    );
    for cmd in ["run", "validate", "explain"] {
        let out = sluice(&[cmd, "--help"]);
        assert_eq!(out.status.code(), Some(0));
        assert!(text(&out.stdout).contains("FILE"), "{cmd} --help");
    }
}

#[test]
fn explain_shows_sources_operators_exchanges_sinks_and_masks_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let sql = write(
        dir.path(),
        "p.sql",
        "SET 'parallelism.default' = '3';\n\
         CREATE TABLE plays (content_id STRING, duration_ms INT) WITH (\n\
           'connector' = 'filesystem', 'path' = '${SECRET_DIR}/plays.jsonl', 'format' = 'json');\n\
         CREATE TABLE totals (content_id STRING, total BIGINT) WITH ('connector' = 'print');\n\
         INSERT INTO totals SELECT content_id, SUM(duration_ms) FROM plays WHERE duration_ms > 0 GROUP BY content_id;\n",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["explain", sql.to_str().unwrap()])
        .env("SECRET_DIR", "/very/secret/place")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let plan = text(&out.stdout);
    assert!(plan.contains("Sink: totals [print]"), "{plan}");
    assert!(plan.contains("GroupAggregate: groupBy=[plays.content_id]"), "{plan}");
    assert!(plan.contains("-- HASH[content_id@0] -->"), "{plan}");
    assert!(plan.contains("Filter: plays.duration_ms > 0"), "{plan}");
    assert!(plan.contains("Source: plays [filesystem] {format=json, path=${SECRET_DIR}/plays.jsonl}"), "{plan}");
    assert!(!plan.contains("/very/secret/place"), "secrets must not be shown: {plan}");
}

#[test]
fn values_from_the_environment_stay_out_of_errors_and_logs() {
    let dir = tempfile::tempdir().unwrap();
    let data = write(dir.path(), "ev.jsonl", "{\"id\": 1}\nnot json\n");
    let sql = write(
        dir.path(),
        "p.sql",
        "CREATE TABLE ev (id BIGINT) WITH ('connector' = 'filesystem', 'path' = '${SECRET_FILE}', 'format' = 'json',\n\
           'json.ignore-parse-errors' = '${SKIP}');\n\
         CREATE TABLE o (id BIGINT) WITH ('connector' = 'print', 'print-identifier' = '${SECRET_ID}');\n\
         INSERT INTO o SELECT id FROM ev;\n",
    );
    let run = |skip: &str| {
        Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["run", sql.to_str().unwrap()])
            .env("SECRET_FILE", &data)
            .env("SKIP", skip)
            .env("SECRET_ID", "hunter2")
            .output()
            .unwrap()
    };
    // An invalid value from the environment: the message shows what was written, not the value.
    let out = run("sometimes");
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("got '${SKIP}'") && !err.contains("sometimes"), "{err}");
    // A skipped line is logged with its place, written as in the SQL.
    let out = run("true");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("${SECRET_FILE}:2"), "{err}");
    assert!(!err.contains(&data.display().to_string()), "{err}");
    // The print identifier is a value the user chose to print.
    assert!(text(&out.stdout).starts_with("hunter2"), "{}", text(&out.stdout));
}

fn events_table(path: &Path, extra: &str) -> String {
    format!(
        "CREATE TABLE ev (id BIGINT, name STRING) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json'{extra});\n\
         CREATE TABLE o (id BIGINT, name STRING) WITH ('connector' = 'print');\n\
         INSERT INTO o SELECT id, name FROM ev;\n",
        path.display()
    )
}

#[test]
fn a_malformed_line_fails_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let data =
        write(dir.path(), "ev.jsonl", "{\"id\": 1, \"name\": \"a\"}\n{\"id\": 2, \"name\": \"b\"}\n{\"id\": oops}\n");
    let sql = write(dir.path(), "p.sql", &events_table(&data, ""));
    let out = sluice(&["run", sql.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    let err = text(&out.stderr);
    assert!(err.contains(&format!("{}:3: malformed JSON line", data.display())), "{err}");
    assert!(err.contains("json.ignore-parse-errors"), "the message says how to skip instead: {err}");
}

#[test]
fn skipped_lines_are_counted_in_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    let data = write(dir.path(), "ev.jsonl", "{\"id\": 1}\nnot json\n{\"id\": \"x\"}\n{\"id\": 4, \"name\": \"d\"}\n");
    let sql = write(dir.path(), "p.sql", &events_table(&data, ", 'json.ignore-parse-errors' = 'true'"));
    let out = sluice(&["run", sql.to_str().unwrap(), "--set", "parallelism.default=1"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "+I[1, null]\n+I[4, d]\n");
    let err = text(&out.stderr);
    let row = err.lines().find(|l| l.trim_start().starts_with("ev ")).expect("summary row for ev");
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells, vec!["ev", "2", "-", "2"], "read 2, skipped 2: {err}");
    assert!(err.contains(&format!("{}:2", data.display())), "skips are logged with their place: {err}");
}

#[test]
fn sigterm_drains_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let sql = write(
        dir.path(),
        "p.sql",
        &format!(
            "CREATE TABLE gen (id BIGINT) WITH ('connector' = 'datagen', 'rows-per-second' = '200');\n\
             CREATE TABLE o (id BIGINT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');\n\
             INSERT INTO o SELECT id FROM gen;\n",
            out_dir.display()
        ),
    );
    let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["run", sql.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let out = sluice_testkit::terminate(child);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("stopped on request"), "{err}");
    // Every row read was written and its part file finished (no in-progress file left).
    let row = err.lines().find(|l| l.trim_start().starts_with("gen ")).expect("summary row");
    let read: u64 = row.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(read > 0);
    let mut lines = 0;
    for e in std::fs::read_dir(&out_dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        assert!(!name.starts_with('.'), "in-progress file left behind: {name}");
        lines += std::fs::read_to_string(e.path()).unwrap().lines().count() as u64;
    }
    assert_eq!(lines, read, "every row read must be in the output");
}

#[test]
fn the_filesystem_sink_rolls_part_files_by_size() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let sql = write(
        dir.path(),
        "p.sql",
        &format!(
            "CREATE TABLE gen (id BIGINT) WITH ('connector' = 'datagen', 'rows-per-second' = '1000000',\n\
               'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '10000');\n\
             CREATE TABLE o (id BIGINT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json',\n\
               'sink.rolling-policy.file-size' = '1kb');\n\
             INSERT INTO o SELECT id FROM gen;\n",
            out_dir.display()
        ),
    );
    let out = sluice(&["run", sql.to_str().unwrap(), "--set", "parallelism.default=1"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let mut files: Vec<String> =
        std::fs::read_dir(&out_dir).unwrap().flatten().map(|e| e.file_name().to_string_lossy().to_string()).collect();
    files.sort();
    assert!(files.len() > 1, "rolled into several files: {files:?}");
    assert!(files.iter().all(|f| f.starts_with("part-") && f.ends_with(".json")), "{files:?}");
    assert_eq!(output_ids(&out_dir), (1..=10000).collect::<Vec<u64>>(), "every row exactly once");
}

#[test]
fn a_big_file_is_split_across_subtasks_without_losing_or_repeating_lines() {
    let dir = tempfile::tempdir().unwrap();
    // ~20 MB: more than two 8 MB splits, with lines of varying length (one CRLF, one blank).
    let mut input = String::new();
    let n = 70_000u64;
    for i in 0..n {
        let pad = "x".repeat((i % 500) as usize);
        input.push_str(&format!("{{\"id\": {i}, \"pad\": \"{pad}\"}}"));
        input.push_str(if i == 12_345 { "\r\n" } else { "\n" });
        if i == 777 {
            input.push('\n');
        }
    }
    let data = write(dir.path(), "big.jsonl", &input);
    assert!(input.len() > 16 << 20);
    let out_dir = dir.path().join("out");
    let sql = write(
        dir.path(),
        "p.sql",
        &format!(
            "CREATE TABLE ev (id BIGINT, pad STRING) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');\n\
             CREATE TABLE o (id BIGINT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');\n\
             INSERT INTO o SELECT id FROM ev;\n",
            data.display(),
            out_dir.display()
        ),
    );
    for parallelism in ["2", "3"] {
        let _ = std::fs::remove_dir_all(&out_dir);
        let out = sluice(&["run", sql.to_str().unwrap(), "--set", &format!("parallelism.default={parallelism}")]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert_eq!(output_ids(&out_dir), (0..n).collect::<Vec<u64>>(), "parallelism {parallelism}");
    }
}

#[test]
fn late_rows_are_counted_in_the_summary_and_logged_with_the_row() {
    let dir = tempfile::tempdir().unwrap();
    let data = write(
        dir.path(),
        "clicks.jsonl",
        "{\"u\":\"a\",\"ts\":\"2024-01-01 00:00:10\"}\n{\"u\":\"b\",\"ts\":\"2024-01-01 00:02:00\"}\n{\"u\":\"late-one\",\"ts\":\"2024-01-01 00:00:20\"}\n{\"u\":\"no-time\",\"ts\":null}\n",
    );
    let sql = format!(
        "SET 'parallelism.default' = '1';\n\
         CREATE TABLE c (u STRING, ts TIMESTAMP(3), WATERMARK FOR ts AS ts) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');\n\
         CREATE TABLE o (s TIMESTAMP(3), n BIGINT, u STRING) WITH ('connector' = 'print');\n\
         INSERT INTO o SELECT window_start, COUNT(*), MAX(u) FROM TABLE(TUMBLE(TABLE c, DESCRIPTOR(ts), INTERVAL '1' MINUTE)) GROUP BY window_start, window_end;\n",
        data.display()
    );
    let file = write(dir.path(), "late.sql", &sql);
    let out = sluice(&["run", &file.display().to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).lines().collect::<Vec<_>>(),
        ["+I[2024-01-01T00:00, 1, a]", "+I[2024-01-01T00:02, 1, b]"]
    );
    let stderr = text(&out.stderr);
    let summary = stderr.lines().find(|l| l.trim_start().starts_with("WindowAggregate[")).expect("operator line");
    assert_eq!(summary.split_whitespace().nth(1), Some("1"), "one late row counted: {stderr}");
    let assign = stderr.lines().find(|l| l.trim_start().starts_with("WindowAssign[")).expect("window assign line");
    assert_eq!(assign.split_whitespace().nth(2), Some("1"), "the row without a rowtime counted apart: {stderr}");
    assert!(stderr.contains("no-time"), "the row without a rowtime is logged: {stderr}");
    // The row as the operator saw it: the columns it reads, with its pane.
    assert!(stderr.contains("Dropped a row") && stderr.contains("late-one"), "the late row is logged: {stderr}");
}
