//! The local files a job's mapper depends on besides its own file: a Python mapper's modules
//! outside the interpreter's libraries (the helpers it imports) and the files it declares
//! (`depends_on`), as its processes reported them. A version's lineage records each with its
//! digest ([`flywheel_formats::path_digest`]); an incremental job digests them again and
//! recomputes every chunk when one changed.

use serde_json::{json, Value};
use std::path::Path;

/// The lineage's `dependencies`: each path with its digest now (`null` when it cannot be read).
pub(crate) fn lineage_entry<'a>(paths: impl IntoIterator<Item = &'a String>) -> Value {
    let entries: Vec<Value> = paths
        .into_iter()
        .map(|p| json!({"path": p, "sha256": flywheel_formats::path_digest(Path::new(p)).ok()}))
        .collect();
    Value::Array(entries)
}

/// The dependencies a version's lineage records: (path, digest then).
pub(crate) fn recorded(lineage: &Value) -> Vec<(String, Option<String>)> {
    lineage["dependencies"]
        .as_array()
        .map(|deps| {
            deps.iter()
                .filter_map(|d| {
                    let path = d["path"].as_str()?.to_string();
                    Some((path, d["sha256"].as_str().map(str::to_string)))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The first recorded dependency whose digest is not what it was (edited, removed, created).
pub(crate) fn first_changed(recorded: &[(String, Option<String>)]) -> Option<String> {
    recorded
        .iter()
        .find(|(p, then)| flywheel_formats::path_digest(Path::new(p)).ok() != *then)
        .map(|(p, _)| p.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edited_removed_or_created_dependency_is_a_change() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let a = dir.path().join("a.py");
        let b = dir.path().join("b.json");
        std::fs::write(&a, "x = 1\n").expect("written");
        let paths = [a.display().to_string(), b.display().to_string()];
        let lineage = json!({ "dependencies": lineage_entry(&paths) });
        let deps = recorded(&lineage);
        assert_eq!(deps.len(), 2);
        assert_eq!(first_changed(&deps), None, "nothing changed");
        std::fs::write(&b, "{}").expect("written");
        assert_eq!(first_changed(&deps), Some(paths[1].clone()), "created");
        let lineage = json!({ "dependencies": lineage_entry(&paths) });
        let deps = recorded(&lineage);
        std::fs::write(&a, "x = 2\n").expect("written");
        assert_eq!(first_changed(&deps), Some(paths[0].clone()), "edited");
        assert_eq!(recorded(&json!({})), Vec::new());
    }
}
