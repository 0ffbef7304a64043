//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

use cdc_envelope::Options;

/// A captured record: exact key and value bytes (`None` = JSON null).
pub struct Capture {
    pub file: &'static str,
    pub line: usize,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
}

pub fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/debezium")
}

/// End (exclusive) of the JSON value starting at `start`.
fn value_end(b: &[u8], start: usize) -> usize {
    let mut depth = 0i32;
    let mut i = start;
    let mut in_str = false;
    while i < b.len() {
        let c = b[i];
        if in_str {
            match c {
                b'\\' => i += 1,
                b'"' => in_str = false,
                _ => {}
            }
        } else {
            match c {
                b'"' => in_str = true,
                b'{' | b'[' => depth += 1,
                b'}' | b']' if depth == 0 => return i,
                b'}' | b']' => {
                    depth -= 1;
                    if depth == 0 {
                        return i + 1;
                    }
                }
                b',' if depth == 0 => return i,
                _ => {}
            }
        }
        i += 1;
    }
    i
}

fn sub(line: &[u8], prefix: &[u8]) -> (Option<Vec<u8>>, usize) {
    let start = prefix.len();
    let end = value_end(line, start);
    let v = &line[start..end];
    (if v == b"null" { None } else { Some(v.to_vec()) }, end)
}

/// Splits `{"key":K,"value":V}` lines into exact byte slices.
pub fn captures(file: &'static str) -> Vec<Capture> {
    let text = std::fs::read(fixture_dir().join(file)).expect("fixture readable");
    text.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .enumerate()
        .map(|(i, line)| {
            assert!(
                line.starts_with(b"{\"key\":"),
                "{file}:{i}: unexpected layout"
            );
            let (key, end) = sub(line, b"{\"key\":");
            let rest = &line[end..];
            assert!(
                rest.starts_with(b",\"value\":"),
                "{file}:{i}: unexpected layout"
            );
            let (value, _) = sub(rest, b",\"value\":");
            Capture {
                file,
                line: i + 1,
                key,
                value,
            }
        })
        .collect()
}

/// The connector options each capture file was produced with.
pub fn options_for(file: &str) -> Options {
    let mut props = vec![("topic.prefix", "pgsource")];
    if !file.ends_with("_default.jsonl") {
        props.extend([
            ("decimal.handling.mode", "string"),
            ("time.precision.mode", "connect"),
            ("tombstones.on.delete", "false"),
        ]);
    }
    Options::from_properties(props).expect("valid options")
}

pub const FILES: [&str; 4] = [
    "emp_seed.jsonl",
    "types_default.jsonl",
    "types_seed.jsonl",
    "arrays_default.jsonl",
];

/// Shows the first difference between two byte strings.
pub fn diff(a: &[u8], b: &[u8]) -> String {
    let i = a
        .iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()));
    let from = i.saturating_sub(120);
    format!(
        "first difference at byte {i}:\n  ours:     {}\n  captured: {}",
        String::from_utf8_lossy(&a[from..(i + 120).min(a.len())]),
        String::from_utf8_lossy(&b[from..(i + 120).min(b.len())])
    )
}

/// Runs `tests/python/fastavro_check.py` on `(schema, datum)` pairs and
/// returns `(decoded record as JSON, fastavro's re-encoding)` for each.
/// Fails (never skips) when python3 or fastavro is missing.
pub fn fastavro(cases: &[(String, Vec<u8>)]) -> Vec<(serde_json::Value, Vec<u8>)> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    const HOW: &str = "python3 with fastavro is required for the Avro cross-check: run `.ci/install-python-deps.sh` \
                       (python3 -m pip install fastavro==1.12.1)";
    let probe = Command::new("python3")
        .args(["-c", "import fastavro"])
        .output();
    match probe {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!("{HOW}\n{}", String::from_utf8_lossy(&o.stderr)),
        Err(e) => panic!("{HOW}: python3 not runnable: {e}"),
    }
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/fastavro_check.py");
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 starts");
    let mut input = String::new();
    for (schema, datum) in cases {
        let hex: String = datum.iter().map(|b| format!("{b:02x}")).collect();
        input.push_str(&serde_json::json!({"schema": schema, "datum": hex}).to_string());
        input.push('\n');
    }
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().expect("python3 finishes");
    writer
        .join()
        .expect("writer thread")
        .expect("stdin written");
    assert!(
        out.status.success(),
        "fastavro_check.py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8 output");
    let results: Vec<_> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json line");
            let hex = v["reencoded"].as_str().expect("hex").to_owned();
            let bytes = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
                .collect();
            (v["decoded"].clone(), bytes)
        })
        .collect();
    assert_eq!(results.len(), cases.len(), "fastavro answered every case");
    results
}
