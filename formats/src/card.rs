//! The table's dataset card, `TABLE/README.md`, rewritten at every publish and vacuum: YAML
//! front matter whose `configs:` make Hugging Face `datasets.load_dataset(TABLE)` read exactly
//! the latest version (`default`, always written) and `load_dataset(TABLE, "vN")` version N (the
//! newest [`MAX_VERSION_CONFIGS`]), with `dataset_info` giving each config's features; then a
//! short summary between two markers. The user's front matter keys and text before and after
//! the markers are kept in place.
//!
//! `datasets` has no type for an Arrow `map` (flywheel's `dict<K, V>`): such a column (or one
//! holding a map anywhere inside) is declared `json`, which `datasets` reads as a list of
//! `[key, value]` pairs.

use crate::{FormatError, Manifest, Table, TYPE_KEY};
use arrow::datatypes::{DataType, Field};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::fs;
use std::io::Write;

const CARD: &str = "README.md";
const BEGIN: &str = "<!-- flywheel:begin (written at each publish; edit outside this block) -->";
const END: &str = "<!-- flywheel:end -->";
/// How many versions get a config `vN` of their own (the newest), besides `default`.
pub const MAX_VERSION_CONFIGS: usize = 20;
/// The folder of the zero-row files that stand for versions without files.
const EMPTY_DIR: &str = "_card";

impl Table {
    /// (Re)writes the dataset card from the manifests; keeps the user's text.
    pub fn write_card(&self) -> Result<(), FormatError> {
        // A publisher that lost a race may write after the winner: write again until the card
        // was made from the version that is still the latest.
        for _ in 0..5 {
            let latest = self.latest_version()?;
            let Some(v) = latest else { return Ok(()) };
            let path = self.dir().join(CARD);
            let old = match fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
                Err(e) => return Err(FormatError::io(&path)(e)),
            };
            let text = self.card_text(v, &old)?;
            if text != old {
                replace(self, &path, text.as_bytes())?;
            }
            if self.latest_version()? == latest {
                break;
            }
        }
        Ok(())
    }

    fn card_text(&self, latest: u64, old: &str) -> Result<String, FormatError> {
        let mut manifests = Vec::new();
        for v in self.versions()? {
            match self.manifest(Some(v)) {
                Ok(m) => manifests.push(m),
                Err(FormatError::VersionMissing { .. }) => {} // vacuumed meanwhile
                Err(e) => return Err(e),
            }
        }
        let Some(last) = manifests.iter().find(|m| m.version == latest) else {
            return Err(FormatError::NoVersion(self.dir().to_path_buf()));
        };
        let mut configs = Vec::new();
        let mut infos = Vec::new();
        // `default` always (HF scans the whole folder when a card names no config), then the
        // newest versions, each listing its files: the card grows with versions × files.
        let named = std::iter::once(("default".to_string(), last)).chain(
            manifests
                .iter()
                .rev()
                .take(MAX_VERSION_CONFIGS)
                .map(|m| (format!("v{}", m.version), m)),
        );
        for (name, m) in named {
            configs.push(json!({
                "config_name": name,
                "data_files": [{ "split": "train", "path": self.card_files(m) }],
            }));
            infos.push(json!({ "config_name": name, "features": features(m)? }));
        }
        let old = OldCard::parse(old);
        let front = json!({ "configs": configs, "dataset_info": infos });
        let mut out = format!("---\n{}{}---\n", old.front, yaml(&front, 0));
        out.push_str(&old.before);
        out.push_str(BEGIN);
        out.push('\n');
        out.push_str(&version_mark(latest));
        out.push_str(&summary(self, last, &manifests));
        if manifests.len() > MAX_VERSION_CONFIGS {
            out.push_str(&format!(
                "\nConfigs `vN` are written for the newest {MAX_VERSION_CONFIGS} versions; read \
                 older ones with `flywheel table files` or a Delta reader.\n"
            ));
        }
        out.push_str(END);
        out.push('\n');
        out.push_str(&old.after);
        Ok(out)
    }
}

impl Table {
    /// The files a config lists for version `m`: its data files, or, for a version without
    /// any (an overwrite to zero rows), a zero-row file with its schema, so that HF reads zero
    /// rows rather than another version's (a card naming no file makes HF scan the folder).
    /// Should that file not be written, the config names it anyway, and HF fails on it.
    fn card_files(&self, m: &Manifest) -> Vec<String> {
        if !m.files.is_empty() {
            return m.files.iter().map(|f| f.path.clone()).collect();
        }
        let hash: String = Sha256::digest(m.schema.to_string().as_bytes())[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let rel = format!("{EMPTY_DIR}/empty-{hash}.parquet");
        let path = self.dir().join(&rel);
        if !path.exists() {
            if let Err(e) = write_empty(&path, m) {
                tracing::warn!(
                    "{}: version {} has no files and its zero-row stand-in was not written: {e}",
                    self.dir().display(),
                    m.version
                );
            }
        }
        vec![rel]
    }

    /// Whether the card was written from version `latest` (a cheap look, for reads).
    pub(crate) fn card_is_current(&self, latest: u64) -> bool {
        fs::read_to_string(self.dir().join(CARD)).is_ok_and(|t| t.contains(&version_mark(latest)))
    }
}

/// A zero-row Parquet file with `m`'s schema.
fn write_empty(path: &std::path::Path, m: &Manifest) -> Result<(), FormatError> {
    let schema = std::sync::Arc::new(crate::schema_from_json(&m.schema.to_string())?);
    let batch = arrow::record_batch::RecordBatch::new_empty(schema);
    crate::write::write_chunk_file(path, &[batch]).map(|_| ())
}

/// The line that says which version the card was written from.
fn version_mark(version: u64) -> String {
    format!("<!-- flywheel:version {version} -->\n")
}

/// Writes `path` under a temporary name, then renames it over the old card.
fn replace(table: &Table, path: &std::path::Path, body: &[u8]) -> Result<(), FormatError> {
    let tmp = table
        .dir()
        .join(format!(".tmp-card-{}.md", std::process::id()));
    let mut f = fs::File::create(&tmp).map_err(FormatError::io(&tmp))?;
    f.write_all(body).map_err(FormatError::io(&tmp))?;
    f.sync_all().map_err(FormatError::io(&tmp))?;
    crate::crash_point(crate::table::CARD_STEP);
    fs::rename(&tmp, path).map_err(FormatError::io(path))
}

/// The user's parts of an old card, each kept in its place: the front matter's keys other
/// than the two flywheel writes (`license:`, `tags:`, `pretty_name:` …), the text before the
/// marked block and the text after it. A card without the block (written by hand before the
/// first publish) has all its text after it.
struct OldCard {
    front: String,
    before: String,
    after: String,
}

impl OldCard {
    fn parse(old: &str) -> OldCard {
        let (front, body) = match old.strip_prefix("---\n") {
            Some(r) if r.starts_with("---\n") => ("", &r[4..]),
            Some(r) => match r.split_once("\n---\n") {
                Some((f, rest)) => (f, rest),
                None => ("", old),
            },
            None => ("", old),
        };
        let (before, after) = match (body.find(BEGIN), body.find(END)) {
            (Some(b), Some(e)) if b < e => (
                body[..b].to_string(),
                body[e + END.len()..].trim_start_matches('\n').to_string(),
            ),
            _ => (String::new(), body.to_string()),
        };
        OldCard {
            front: user_keys(front),
            before,
            after,
        }
    }
}

/// The front matter's top-level entries (a key's line with the lines under it), verbatim,
/// less `configs` and `dataset_info`; comments and blank lines stay with the entry above.
fn user_keys(front: &str) -> String {
    let mut out = String::new();
    let mut keep = true;
    for line in front.lines() {
        let top = !line.starts_with([' ', '\t', '-', '#']) && !line.trim().is_empty();
        if top {
            let key = line.split(':').next().unwrap_or("").trim();
            let key = key.trim_matches(|c| c == '"' || c == '\'');
            keep = !matches!(key, "configs" | "dataset_info");
        }
        if keep {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The human summary: version, rows, schema with flywheel types, versions, lineage.
fn summary(table: &Table, last: &Manifest, all: &[Manifest]) -> String {
    let name = table
        .dir()
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut s = format!(
        "# {name}\n\nA flywheel table: version {} has {} rows in {} files. Read it with \
         `flywheel table files {name}@{}`, Delta Lake readers (`_delta_log/`, Delta version N = \
         flywheel version N) or `datasets.load_dataset(\"{name}\")` (config `vN` for version N); \
         never as the directory's Parquet files, which hold every version.\n\n\
         | column | flywheel type |\n|---|---|\n",
        last.version,
        last.num_rows,
        last.files.len(),
        last.version
    );
    for f in arrow_fields(last) {
        let ty = f.metadata().get(TYPE_KEY).cloned().unwrap_or_default();
        s.push_str(&format!("| `{}` | `{ty}` |\n", f.name()));
    }
    s.push_str("\n| version | operation | rows | created | job |\n|---|---|---|---|---|\n");
    for m in all.iter().rev() {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            m.version,
            m.operation,
            m.num_rows,
            m.created_at,
            m.job_id.as_deref().unwrap_or("")
        ));
    }
    let l = crate::delta::lineage_summary(&last.lineage);
    s.push_str(&format!(
        "\nVersion {} was made by mapper `{}` from `{}`.\n",
        last.version,
        l["mapper"].as_str().unwrap_or("?"),
        l["input"].as_str().unwrap_or("?")
    ));
    s
}

fn arrow_fields(m: &Manifest) -> Vec<Field> {
    crate::schema_from_json(&m.schema.to_string())
        .map(|s| s.fields().iter().map(|f| f.as_ref().clone()).collect())
        .unwrap_or_default()
}

/// `dataset_info.features` of a version.
fn features(m: &Manifest) -> Result<Value, FormatError> {
    arrow_fields(m)
        .iter()
        .map(named)
        .collect::<Result<Vec<_>, _>>()
        .map(Value::Array)
}

fn named(f: &Field) -> Result<Value, FormatError> {
    let mut v = json!({ "name": f.name() });
    if let (Value::Object(o), Value::Object(body)) = (&mut v, feature(f.data_type())?) {
        o.extend(body);
    }
    Ok(v)
}

/// One feature's body (`dtype`, `list` or `struct`) in `datasets`' YAML form.
fn feature(dt: &DataType) -> Result<Value, FormatError> {
    if has_map(dt) {
        return Ok(json!({ "dtype": "json" }));
    }
    Ok(match dt {
        DataType::List(item) | DataType::LargeList(item) => json!({ "list": list_item(item)? }),
        DataType::FixedSizeList(item, n) => json!({ "list": list_item(item)?, "length": n }),
        DataType::Struct(fields) => json!({
            "struct": fields.iter().map(|f| named(f)).collect::<Result<Vec<_>, _>>()?
        }),
        other => json!({ "dtype": dtype(other)? }),
    })
}

/// A list's item: a dtype name, a struct's fields, or a nested list's body.
fn list_item(item: &Field) -> Result<Value, FormatError> {
    Ok(match feature(item.data_type())? {
        Value::Object(mut o) if o.len() == 1 && o.contains_key("dtype") => {
            o.remove("dtype").unwrap_or(Value::Null)
        }
        Value::Object(mut o) if o.len() == 1 && o.contains_key("struct") => {
            o.remove("struct").unwrap_or(Value::Null)
        }
        other => other,
    })
}

fn has_map(dt: &DataType) -> bool {
    match dt {
        DataType::Map(_, _) => true,
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            has_map(f.data_type())
        }
        DataType::Struct(fs) => fs.iter().any(|f| has_map(f.data_type())),
        _ => false,
    }
}

fn dtype(dt: &DataType) -> Result<String, FormatError> {
    use arrow::datatypes::TimeUnit;
    Ok(match dt {
        DataType::Boolean => "bool".into(),
        DataType::Int8 => "int8".into(),
        DataType::Int16 => "int16".into(),
        DataType::Int32 => "int32".into(),
        DataType::Int64 => "int64".into(),
        DataType::UInt8 => "uint8".into(),
        DataType::UInt16 => "uint16".into(),
        DataType::UInt32 => "uint32".into(),
        DataType::UInt64 => "uint64".into(),
        DataType::Float16 => "float16".into(),
        DataType::Float32 => "float32".into(),
        DataType::Float64 => "float64".into(),
        DataType::Utf8 => "string".into(),
        DataType::LargeUtf8 => "large_string".into(),
        DataType::Binary => "binary".into(),
        DataType::LargeBinary => "large_binary".into(),
        DataType::Date32 => "date32".into(),
        DataType::Timestamp(unit, tz) => {
            let unit = match unit {
                TimeUnit::Second => "s",
                TimeUnit::Millisecond => "ms",
                TimeUnit::Microsecond => "us",
                TimeUnit::Nanosecond => "ns",
            };
            match tz {
                Some(tz) => format!("timestamp[{unit}, tz={tz}]"),
                None => format!("timestamp[{unit}]"),
            }
        }
        DataType::Null => "null".into(),
        other => {
            return Err(FormatError::Unsupported {
                path: CARD.into(),
                what: format!("Arrow type {other} has no Hugging Face datasets feature"),
            })
        }
    })
}

/// Block-style YAML of a JSON value (strings double-quoted, which YAML reads as JSON does).
fn yaml(v: &Value, indent: usize) -> String {
    let pad = " ".repeat(indent);
    let mut out = String::new();
    match v {
        Value::Object(o) if !o.is_empty() => {
            for (k, val) in o {
                let key = scalar(&Value::String(k.clone()));
                if is_block(val) {
                    out.push_str(&format!("{pad}{key}:\n{}", yaml(val, indent + 2)));
                } else {
                    out.push_str(&format!("{pad}{key}: {}\n", scalar(val)));
                }
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for item in items {
                if is_block(item) {
                    // The item's first line goes after the dash.
                    let body = yaml(item, indent + 2);
                    out.push_str(&format!("{pad}- {}", &body[indent + 2..]));
                } else {
                    out.push_str(&format!("{pad}- {}\n", scalar(item)));
                }
            }
        }
        other => out.push_str(&format!("{pad}{}\n", scalar(other))),
    }
    out
}

/// A scalar as YAML: plain when YAML reads the plain text back as the same string (names,
/// paths), else as JSON, which YAML reads as JSON does.
fn scalar(v: &Value) -> String {
    if let Value::String(t) = v {
        let safe = t
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_./-".contains(&b));
        let first = t
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
        let word = ["true", "false", "yes", "no", "on", "off", "null", "y", "n"]
            .contains(&t.to_ascii_lowercase().as_str());
        if safe && first && !word {
            return t.clone();
        }
    }
    v.to_string()
}

fn is_block(v: &Value) -> bool {
    matches!(v, Value::Object(o) if !o.is_empty()) || matches!(v, Value::Array(a) if !a.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_users_text_outside_the_block_is_kept() {
        let card = format!(
            "---\nlicense: mit\nconfigs:\n- config_name: x\n  data_files: a\ntags:\n  - t # c\n\
             dataset_info:\n  - config_name: x\npretty_name: \"P\"\n---\nintro\n{BEGIN}\nours\n{END}\nmine\n"
        );
        let old = OldCard::parse(&card);
        assert_eq!(
            old.front,
            "license: mit\ntags:\n  - t # c\npretty_name: \"P\"\n"
        );
        assert_eq!(old.before, "intro\n");
        assert_eq!(old.after, "mine\n");
        let hand = OldCard::parse("hand-written\n");
        assert_eq!((hand.front.as_str(), hand.before.as_str()), ("", ""));
        assert_eq!(hand.after, "hand-written\n");
    }

    #[test]
    fn yaml_nests_lists_of_objects() {
        let v = json!({"c": [{"name": "x", "p": ["a b", "true"]}]});
        assert_eq!(
            yaml(&v, 0),
            "c:\n  - name: x\n    p:\n      - \"a b\"\n      - \"true\"\n"
        );
    }
}
