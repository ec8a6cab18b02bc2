//! Checkpoints as users drive them from the command line: settings errors, the delivery guarantee
//! in `explain`, stop-with-savepoint on SIGTERM and resuming, a changed pipeline refused, and a
//! damaged newest checkpoint skipped in favour of the previous one.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write file");
    p
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

fn sluice(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sluice"));
    c.args(args).env("SLUICE_LOG", "warn");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run sluice")
}

/// The `id` of every row in the visible JSON part files under `dir`, sorted.
fn committed_ids(dir: &Path) -> Vec<i64> {
    let mut ids = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        for line in std::fs::read_to_string(e.path()).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            ids.push(v["id"].as_i64().unwrap());
        }
    }
    ids.sort();
    ids
}

fn settings(checkpoints: &Path) -> [String; 4] {
    [
        "--set".into(),
        "execution.checkpointing.interval=1h".into(),
        "--set".into(),
        format!("execution.checkpointing.dir={}", checkpoints.display()),
    ]
}

#[test]
fn an_interval_without_a_directory_is_refused_with_the_setting_to_add() {
    let dir = tempfile::tempdir().unwrap();
    let sql = write(
        dir.path(),
        "p.sql",
        "SET 'execution.checkpointing.interval' = '10s';\n\
         CREATE TABLE g (id BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '3');\n\
         CREATE TABLE o (id BIGINT) WITH ('connector' = 'print');\nINSERT INTO o SELECT id FROM g;\n",
    );
    let out = sluice(&["run", sql.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("set 'execution.checkpointing.dir'"), "{}", text(&out.stderr));
}

#[test]
fn explain_shows_each_sinks_delivery_guarantee() {
    let dir = tempfile::tempdir().unwrap();
    let sql = write(
        dir.path(),
        "p.sql",
        &format!(
            "CREATE TABLE g (id BIGINT) WITH ('connector' = 'datagen', 'number-of-rows' = '3');\n\
             CREATE TABLE f (id BIGINT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');\n\
             CREATE TABLE p (id BIGINT) WITH ('connector' = 'print');\n\
             EXECUTE STATEMENT SET BEGIN INSERT INTO f SELECT id FROM g; INSERT INTO p SELECT id FROM g; END;\n",
            dir.path().join("out").display()
        ),
    );
    let ck = dir.path().join("ck");
    let on = settings(&ck);
    let mut args = vec!["explain", sql.to_str().unwrap()];
    args.extend(on.iter().map(String::as_str));
    let out = sluice(&args, &[]);
    let plan = text(&out.stdout);
    assert!(plan.contains("Sink: f [filesystem]") && plan.contains("delivery=exactly-once"), "{plan}");
    assert!(plan.contains("Sink: p [print]") && plan.contains("delivery=at-least-once"), "{plan}");
    let off = text(&sluice(&["explain", sql.to_str().unwrap()], &[]).stdout);
    assert_eq!(off.matches("delivery=none (checkpointing is off)").count(), 2, "{off}");
}

#[test]
fn sigterm_takes_a_savepoint_and_the_next_run_resumes_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let ck = dir.path().join("ck");
    // 3000 ids at 1000 rows/s in one subtask: the stop lands in the middle.
    let sql = write(
        dir.path(),
        "p.sql",
        &format!(
            "SET 'parallelism.default' = '1';\n\
             SET 'execution.checkpointing.interval' = '500ms';\n\
             SET 'execution.checkpointing.dir' = '{}';\n\
             CREATE TABLE g (id BIGINT) WITH ('connector' = 'datagen', 'rows-per-second' = '1000',\n\
               'fields.id.kind' = 'sequence', 'fields.id.start' = '0', 'fields.id.end' = '2999');\n\
             CREATE TABLE o (id BIGINT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');\n\
             INSERT INTO o SELECT id FROM g;\n",
            ck.display(),
            out_dir.display()
        ),
    );
    let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["run", sql.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    let out = sluice_testkit::terminate(child);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("savepoint: ") && err.contains("the next run resumes from it"), "{err}");
    let first = committed_ids(&out_dir);
    assert!(!first.is_empty() && first.len() < 3000, "the stop came mid-input: {} rows", first.len());
    assert_eq!(first, (0..first.len() as i64).collect::<Vec<_>>(), "the savepoint holds a prefix, once");

    let out = sluice(&["run", sql.to_str().unwrap()], &[]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("sluice: resuming from "), "{err}");
    assert_eq!(committed_ids(&out_dir), (0..3000).collect::<Vec<_>>(), "every id exactly once");

    // The run ended: a new run starts from the beginning (and writes everything again).
    let out = sluice(&["run", sql.to_str().unwrap(), "--set", "parallelism.default=1"], &[]);
    assert!(!text(&out.stderr).contains("resuming from"), "{}", text(&out.stderr));
}

/// A filesystem source read one row per batch, a keyed aggregation, a filesystem sink.
fn counting_pipeline(dir: &Path, key: &str) -> PathBuf {
    let data = dir.join("in.jsonl");
    if !data.exists() {
        let lines: Vec<String> = (0..40).map(|i| format!(r#"{{"id":{i},"k":"k{}","v":{}}}"#, i % 4, i % 7)).collect();
        std::fs::write(&data, lines.join("\n") + "\n").unwrap();
    }
    write(
        dir,
        "p.sql",
        &format!(
            "SET 'parallelism.default' = '1';\n\
             CREATE TABLE src (id BIGINT, k STRING, v INT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');\n\
             CREATE TABLE copy (id BIGINT, k STRING) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');\n\
             CREATE TABLE totals (k STRING, n BIGINT) WITH ('connector' = 'print');\n\
             EXECUTE STATEMENT SET BEGIN\n\
             INSERT INTO copy SELECT id, k FROM src;\n\
             INSERT INTO totals SELECT {key}, COUNT(*) FROM src GROUP BY {key};\n\
             END;\n",
            data.display(),
            dir.join("out").display()
        ),
    )
}

fn run_with(sql: &Path, ck: &Path, extra: &[&str], env: &[(&str, &str)]) -> Output {
    let s = settings(ck);
    let mut args = vec!["run", sql.to_str().unwrap()];
    args.extend(s.iter().map(String::as_str));
    args.extend_from_slice(extra);
    sluice(&args, env)
}

#[test]
fn a_changed_pipeline_is_refused_and_from_scratch_starts_over() {
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("ck");
    let sql = counting_pipeline(dir.path(), "k");
    let stop = [("SLUICE_TEST_BATCH_ROWS", "1"), ("SLUICE_TEST_STOP_AFTER_BATCHES", "5")];
    let out = run_with(&sql, &ck, &[], &stop);
    assert!(text(&out.stderr).contains("savepoint: "), "{}", text(&out.stderr));
    // Grouping by another expression: the aggregation's state does not fit.
    let sql = counting_pipeline(dir.path(), "CAST(v AS STRING)");
    let out = run_with(&sql, &ck, &[], &[]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("the pipeline changed since: stateful operator"), "{err}");
    assert!(err.contains("checkpoint: GroupAggregate: groupBy=[src.k]"), "the old operator is shown: {err}");
    assert!(err.contains("--from-scratch"), "{err}");
    let out = run_with(&sql, &ck, &["--from-scratch"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(!text(&out.stderr).contains("resuming"));
}

#[test]
fn a_damaged_newest_checkpoint_is_skipped_and_the_previous_one_gives_exact_output() {
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("ck");
    let sql = counting_pipeline(dir.path(), "k");
    let stop = [("SLUICE_TEST_BATCH_ROWS", "1"), ("SLUICE_TEST_STOP_AFTER_BATCHES", "6")];
    // Two savepoints: after 6 rows, then (resumed) after 6 more.
    for _ in 0..2 {
        let out = run_with(&sql, &ck, &[], &stop);
        assert!(text(&out.stderr).contains("savepoint: "), "{}", text(&out.stderr));
    }
    let mut ids: Vec<u64> = std::fs::read_dir(&ck)
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().strip_prefix("chk-").and_then(|n| n.parse().ok()))
        .collect();
    ids.sort();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert_eq!(committed_ids(&dir.path().join("out")).len(), 12, "two savepoints of 6 rows each");
    // Flip a byte in a state file of the newest checkpoint.
    let newest = ck.join(format!("chk-{}", ids[1]));
    let state = std::fs::read_dir(&newest)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "state"))
        .unwrap();
    let mut bytes = std::fs::read(&state).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&state, bytes).unwrap();

    let out = run_with(&sql, &ck, &[], &[("SLUICE_TEST_BATCH_ROWS", "1")]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("Skipping a checkpoint that cannot be restored") && err.contains("checksum"), "{err}");
    assert!(err.contains(&format!("resuming from {}", ck.join(format!("chk-{}", ids[0])).display())), "{err}");
    // The rows committed by the damaged checkpoint were taken back and written once more.
    assert_eq!(committed_ids(&dir.path().join("out")), (0..40).collect::<Vec<_>>());
}

#[test]
fn from_savepoint_resumes_from_the_given_folder() {
    let dir = tempfile::tempdir().unwrap();
    let sql = counting_pipeline(dir.path(), "k");
    let first = dir.path().join("ck-first");
    let out = run_with(&sql, &first, &[], &[("SLUICE_TEST_BATCH_ROWS", "1"), ("SLUICE_TEST_STOP_AFTER_BATCHES", "9")]);
    let err = text(&out.stderr);
    let savepoint = err
        .lines()
        .find_map(|l| l.trim().strip_prefix("savepoint: "))
        .and_then(|l| l.split(' ').next())
        .unwrap_or_else(|| panic!("no savepoint: {err}"))
        .to_string();
    assert_eq!(committed_ids(&dir.path().join("out")), (0..9).collect::<Vec<_>>());
    // Resume from that folder while new checkpoints go to another directory.
    let other = dir.path().join("ck-other");
    let out = run_with(&sql, &other, &["--from-savepoint", &savepoint], &[]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains(&format!("resuming from {savepoint}")), "{err}");
    assert_eq!(committed_ids(&dir.path().join("out")), (0..40).collect::<Vec<_>>());
    let bad = sluice(&["run", sql.to_str().unwrap(), "--from-savepoint", "/nonexistent/chk-3"], &[]);
    assert_eq!(bad.status.code(), Some(1), "{}", text(&bad.stderr));
    assert!(text(&bad.stderr).contains("cannot restore from '/nonexistent/chk-3'"), "{}", text(&bad.stderr));
}
