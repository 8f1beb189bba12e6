//! JSON files written whole or not at all (temp file + rename), for every module
//! that writes one: run directories, model versions, summaries.

use std::path::Path;

use anyhow::Context;
use serde::Serialize;

/// Writes `value` as pretty JSON to `path`, atomically (temp file + rename).
pub fn write_json<T: Serialize + ?Sized>(path: &Path, value: &T) -> anyhow::Result<()> {
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_string_pretty(value).context("serialising JSON")?;
    std::fs::write(&tmp, text + "\n").with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
