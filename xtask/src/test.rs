//! `cargo xtask test`: the whole suite against real services.

use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Result};

use crate::layout::Layout;
use crate::services;

pub fn run(layout: &Layout, keep_services: bool, cargo_test_args: &[String]) -> Result<()> {
    let started = Instant::now();
    let result = run_steps(layout, cargo_test_args);
    if !keep_services {
        if let Err(e) = services::down(layout) {
            eprintln!("warning: stopping services failed: {e:#}");
        }
    }
    println!(
        "xtask test finished in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    result
}

fn run_steps(layout: &Layout, cargo_test_args: &[String]) -> Result<()> {
    services::up(layout)?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    step(
        layout,
        "cargo fmt --check",
        Command::new(&cargo).args(["fmt", "--all", "--", "--check"]),
    )?;
    step(
        layout,
        "cargo clippy",
        Command::new(&cargo).args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--all-features",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    let mut test = Command::new(&cargo);
    test.args(["test", "--workspace"]).args(cargo_test_args);
    for (k, v) in services::test_env(layout) {
        test.env(k, v);
    }
    step(layout, "cargo test", &mut test)
}

fn step(layout: &Layout, name: &str, cmd: &mut Command) -> Result<()> {
    println!("==> {name}");
    let t = Instant::now();
    let status = cmd.current_dir(&layout.root).status()?;
    println!(
        "<== {name}: {} in {:.0} s",
        if status.success() { "ok" } else { "FAILED" },
        t.elapsed().as_secs_f64()
    );
    if !status.success() {
        bail!("{name} failed ({status})");
    }
    Ok(())
}
