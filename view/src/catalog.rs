//! The tables a viewer serves: found under the paths given, named, and the only places it reads.
//!
//! Every file the viewer opens is checked here first: it must resolve (symlinks followed) to a
//! path inside its table's directory, so a symlink out of a table is refused, whatever points
//! at it.

use crate::ViewError;
use flywheel_formats::{Manifest, Table};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// How deep below a given directory tables are looked for.
const SEARCH_DEPTH: usize = 6;

/// One served table.
#[derive(Debug, Clone)]
pub struct Served {
    /// The name in URLs and SQL: the path below the directory given (or the directory's own
    /// name for a table given directly).
    pub name: String,
    /// The table directory, resolved.
    pub dir: PathBuf,
    pub table: Table,
}

/// Every served table, by name.
#[derive(Debug, Default)]
pub struct Catalog {
    pub tables: BTreeMap<String, Served>,
}

impl Catalog {
    /// Finds the tables at or below each of `paths` (a table, or a directory holding tables
    /// found by their `_versions/`). Symlinked directories are not followed.
    pub fn discover(paths: &[PathBuf]) -> Result<Catalog, ViewError> {
        let mut catalog = Catalog::default();
        for p in paths {
            let root = std::fs::canonicalize(p).map_err(|e| ViewError::Path {
                path: p.clone(),
                reason: e.to_string(),
            })?;
            if Table::is_table(&root) {
                let name = root
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "t".into());
                catalog.add(name, root)?;
                continue;
            }
            let before = catalog.tables.len();
            catalog.walk(&root, &root, 0)?;
            if catalog.tables.len() == before {
                return Err(ViewError::Path {
                    path: p.clone(),
                    reason: "is not a table and holds no table (no _versions/ below it)".into(),
                });
            }
        }
        Ok(catalog)
    }

    fn walk(&mut self, root: &Path, dir: &Path, depth: usize) -> Result<(), ViewError> {
        if depth > SEARCH_DEPTH {
            return Ok(());
        }
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Ok(());
        };
        let mut dirs: Vec<PathBuf> = entries
            .flatten()
            .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
            .map(|e| e.path())
            .filter(|p| {
                !p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('_'))
            })
            .collect();
        dirs.sort();
        for d in dirs {
            if Table::is_table(&d) {
                let name = d
                    .strip_prefix(root)
                    .map(|r| r.to_string_lossy().into_owned())
                    .unwrap_or_default();
                self.add(name, d)?;
            } else {
                self.walk(root, &d, depth + 1)?;
            }
        }
        Ok(())
    }

    fn add(&mut self, name: String, dir: PathBuf) -> Result<(), ViewError> {
        if let Some(other) = self.tables.get(&name) {
            return Err(ViewError::Path {
                path: dir,
                reason: format!(
                    "has the same name '{name}' as {}; serve one of them",
                    other.dir.display()
                ),
            });
        }
        let table = Table::new(&dir);
        self.tables
            .insert(name.clone(), Served { name, dir, table });
        Ok(())
    }

    /// `NAME` or `NAME@V`: the served table and the version asked for (`None`: the latest).
    pub fn address(&self, text: &str) -> Result<(&Served, Option<u64>), ViewError> {
        let (name, version) = match text.rsplit_once('@') {
            Some((n, "latest")) => (n, None),
            Some((n, v)) => match v.parse::<u64>() {
                Ok(v) if v >= 1 => (n, Some(v)),
                _ => {
                    return Err(ViewError::BadRequest(format!(
                        "'{text}': '@{v}' is not a version"
                    )))
                }
            },
            None => (text, None),
        };
        let served = self
            .tables
            .get(name)
            .ok_or_else(|| ViewError::NotFound(format!("no served table '{name}'")))?;
        Ok((served, version))
    }

    /// The served table whose directory is `dir` (resolved), if any.
    pub fn by_dir(&self, dir: &Path) -> Option<&Served> {
        let dir = std::fs::canonicalize(dir).ok()?;
        self.tables.values().find(|s| s.dir == dir)
    }
}

impl Served {
    /// The manifest of `version` (the latest when `None`), its file checked to lie inside the
    /// table.
    pub fn manifest(&self, version: Option<u64>) -> Result<Manifest, ViewError> {
        let v = match version {
            Some(v) => v,
            None => self
                .table
                .latest_version()?
                .ok_or_else(|| ViewError::NotFound(format!("{} has no version", self.name)))?,
        };
        self.check_inside(&self.dir.join("_versions").join(format!("{v:020}.json")))?;
        Ok(self.table.manifest(Some(v))?)
    }

    /// Refuses `path` unless it resolves to a path inside the table (a missing file passes: the
    /// reader names it).
    pub fn check_inside(&self, path: &Path) -> Result<(), ViewError> {
        match std::fs::canonicalize(path) {
            Ok(real) if real.starts_with(&self.dir) => Ok(()),
            Ok(_) => Err(ViewError::Forbidden(format!(
                "{}: resolves outside the table {}; refused",
                path.strip_prefix(&self.dir).unwrap_or(path).display(),
                self.name
            ))),
            Err(_) => Ok(()),
        }
    }

    /// Checks the data files holding rows `rows` of `m` (every file when `None`).
    pub fn check_files(
        &self,
        m: &Manifest,
        rows: Option<std::ops::Range<u64>>,
    ) -> Result<(), ViewError> {
        let mut start = 0u64;
        for f in &m.files {
            let end = start + f.rows;
            let touched = rows.as_ref().is_none_or(|r| start < r.end && end > r.start);
            if touched {
                self.check_inside(&self.dir.join(&f.path))?;
            }
            start = end;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(dir: &Path) {
        std::fs::create_dir_all(dir.join("_versions")).expect("a table directory");
    }

    #[test]
    fn tables_are_found_named_and_addressed() {
        let tmp = tempfile::tempdir().expect("a temporary directory");
        let root = tmp.path();
        table(&root.join("a"));
        table(&root.join("deep/b"));
        table(&root.join("_hidden/c"));
        std::fs::create_dir_all(root.join("empty")).expect("a directory");
        let c = Catalog::discover(&[root.to_path_buf()]).expect("discovered");
        assert_eq!(c.tables.keys().collect::<Vec<_>>(), ["a", "deep/b"]);
        let (s, v) = c.address("deep/b@3").expect("an address");
        assert_eq!((s.name.as_str(), v), ("deep/b", Some(3)));
        assert_eq!(c.address("a@latest").expect("latest").1, None);
        assert!(matches!(c.address("a@0"), Err(ViewError::BadRequest(_))));
        assert!(matches!(c.address("nope"), Err(ViewError::NotFound(_))));
        let one = Catalog::discover(&[root.join("deep/b")]).expect("one table");
        assert_eq!(one.tables.keys().collect::<Vec<_>>(), ["b"]);
        let none = Catalog::discover(&[root.join("empty")]).expect_err("no table");
        assert!(
            none.to_string()
                .ends_with("holds no table (no _versions/ below it)"),
            "{none}"
        );
    }

    #[test]
    fn files_resolving_outside_a_table_are_refused() {
        let tmp = tempfile::tempdir().expect("a temporary directory");
        let root = tmp.path();
        table(&root.join("a"));
        std::fs::write(root.join("secret"), "x").expect("written");
        std::fs::create_dir_all(root.join("a/data")).expect("data");
        std::fs::write(root.join("a/data/in.parquet"), "x").expect("written");
        std::os::unix::fs::symlink(root.join("secret"), root.join("a/data/out.parquet"))
            .expect("symlinked");
        let c = Catalog::discover(&[root.join("a")]).expect("discovered");
        let s = &c.tables["a"];
        assert!(s.check_inside(&s.dir.join("data/in.parquet")).is_ok());
        let e = s
            .check_inside(&s.dir.join("data/out.parquet"))
            .expect_err("outside");
        assert_eq!(
            e.to_string(),
            "data/out.parquet: resolves outside the table a; refused"
        );
        assert!(s.check_inside(&s.dir.join("data/../../secret")).is_err());
    }
}
