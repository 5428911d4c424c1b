//! The Delta Lake log's actions, as the protocol's JSON spells them (one action a line).
//!
//! Only what flywheel writes: `protocol` and `metaData` (version 0, and a changed schema),
//! `add` / `remove` for the files a version gains or drops, and `commitInfo`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The lowest reader and writer versions: no table features are used.
pub const MIN_READER_VERSION: u32 = 1;
pub const MIN_WRITER_VERSION: u32 = 2;

/// One line of a commit file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    CommitInfo(CommitInfo),
    Protocol(Protocol),
    MetaData(MetaData),
    Add(Add),
    Remove(Remove),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Protocol {
    pub min_reader_version: u32,
    pub min_writer_version: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Format {
    pub provider: String,
    pub options: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetaData {
    pub id: String,
    pub name: Option<String>,
    pub format: Format,
    /// The Delta schema (a `struct`), as JSON text.
    pub schema_string: String,
    pub partition_columns: Vec<String>,
    pub configuration: BTreeMap<String, String>,
    /// Milliseconds since the epoch.
    pub created_time: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Add {
    /// Relative to the table directory (URL-encoded; flywheel's names need no escaping).
    pub path: String,
    pub partition_values: BTreeMap<String, String>,
    pub size: u64,
    /// Milliseconds since the epoch: the commit time of the version that added the file.
    pub modification_time: i64,
    pub data_change: bool,
    /// `numRecords`, `minValues`, `maxValues`, `nullCount`, as JSON text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stats: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Remove {
    pub path: String,
    /// Milliseconds since the epoch: the commit time of the version that dropped the file.
    pub deletion_timestamp: i64,
    pub data_change: bool,
    pub extended_file_metadata: bool,
    pub partition_values: BTreeMap<String, String>,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommitInfo {
    /// Milliseconds since the epoch: the flywheel manifest's `created_at`.
    pub timestamp: i64,
    /// `CREATE TABLE` (version 0) or `WRITE`.
    pub operation: String,
    pub operation_parameters: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_version: Option<u64>,
    pub is_blind_append: bool,
    /// flywheel's own record of the version: its job id, operation and lineage summary.
    pub flywheel: serde_json::Value,
}

/// The text of a commit file: one JSON object a line, each ending in a newline.
pub fn to_lines(actions: &[Action]) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::new();
    for a in actions {
        serde_json::to_writer(&mut out, a)?;
        out.push(b'\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_are_spelled_as_the_delta_protocol_spells_them() {
        let lines = to_lines(&[
            Action::Protocol(Protocol {
                min_reader_version: 1,
                min_writer_version: 2,
            }),
            Action::Remove(Remove {
                path: "data/a.parquet".into(),
                deletion_timestamp: 5,
                data_change: true,
                extended_file_metadata: true,
                partition_values: BTreeMap::new(),
                size: 10,
            }),
        ])
        .unwrap();
        assert_eq!(
            String::from_utf8(lines).unwrap(),
            concat!(
                r#"{"protocol":{"minReaderVersion":1,"minWriterVersion":2}}"#,
                "\n",
                r#"{"remove":{"path":"data/a.parquet","deletionTimestamp":5,"dataChange":true,"extendedFileMetadata":true,"partitionValues":{},"size":10}}"#,
                "\n"
            )
        );
    }
}
