//! Paths into a value: `meta.turns[0].text`, `["odd.name"][2]`. The first step names a column;
//! keys step into structs, maps and JSON objects, indices into lists and JSON arrays.

use crate::ExploreError;
use serde_json::Value;

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A struct member, map key or JSON object key (the first step: a column name).
    Key(String),
    /// An item of a list or JSON array, from 0.
    Index(usize),
}

/// Parses `a.b[0].c`, `a["b.c"]`, `a['x'][3]`. The first step names a column.
pub fn parse_path(text: &str) -> Result<Vec<Step>, ExploreError> {
    let bad = |why: &str| ExploreError::BadPath {
        path: text.to_string(),
        reason: why.to_string(),
    };
    let chars: Vec<char> = text.chars().collect();
    let mut steps = Vec::new();
    let mut i = 0;
    let mut expect_key = true;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                if steps.is_empty() || expect_key {
                    return Err(bad("a '.' must follow a name or ']'"));
                }
                expect_key = true;
                i += 1;
            }
            '[' => {
                let close = chars[i..]
                    .iter()
                    .position(|c| *c == ']')
                    .map(|p| p + i)
                    .ok_or_else(|| bad("'[' without ']'"))?;
                let inner: String = chars[i + 1..close].iter().collect();
                steps.push(bracketed(inner.trim(), steps.is_empty()).map_err(bad)?);
                expect_key = false;
                i = close + 1;
            }
            _ => {
                if !expect_key {
                    return Err(bad("expected '.' or '[' after a name or ']'"));
                }
                let start = i;
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    i += 1;
                }
                steps.push(Step::Key(chars[start..i].iter().collect()));
                expect_key = false;
            }
        }
    }
    // Still expecting a name: the path was empty or ended in '.'.
    if steps.is_empty() || expect_key {
        return Err(bad("empty path or a path ending in '.'"));
    }
    Ok(steps)
}

/// The step inside `[…]`: a quoted key or an index (which cannot come first).
fn bracketed(inner: &str, first: bool) -> Result<Step, &'static str> {
    if let Some(q) = inner.chars().next().filter(|c| *c == '"' || *c == '\'') {
        if inner.len() < 2 || !inner.ends_with(q) {
            return Err("unterminated quoted key");
        }
        return Ok(Step::Key(inner[1..inner.len() - 1].to_string()));
    }
    let n: usize = inner
        .parse()
        .map_err(|_| "an index in [] must be a number ≥ 0 or a quoted key")?;
    if first {
        return Err("the path starts with a column name");
    }
    Ok(Step::Index(n))
}

/// Writes steps back as a path (`a.b[0]`, with keys that need it quoted).
pub fn path_text(steps: &[Step]) -> String {
    let mut out = String::new();
    for (i, s) in steps.iter().enumerate() {
        match s {
            Step::Key(k) if !k.is_empty() && !k.contains(['.', '[', ']', '"', '\'']) => {
                if i > 0 {
                    out.push('.');
                }
                out.push_str(k);
            }
            Step::Key(k) => out.push_str(&format!("[{}]", Value::String(k.clone()))),
            Step::Index(n) => out.push_str(&format!("[{n}]")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_and_print() {
        let p = parse_path("meta.turns[2].text").expect("parses");
        assert_eq!(
            p,
            vec![
                Step::Key("meta".into()),
                Step::Key("turns".into()),
                Step::Index(2),
                Step::Key("text".into())
            ]
        );
        assert_eq!(path_text(&p), "meta.turns[2].text");
        let q = parse_path("a[\"x.y\"]['z'][0]").expect("parses");
        assert_eq!(
            q,
            vec![
                Step::Key("a".into()),
                Step::Key("x.y".into()),
                Step::Key("z".into()),
                Step::Index(0)
            ]
        );
        assert_eq!(path_text(&q), "a[\"x.y\"].z[0]");
        for bad in [
            "", "a.", ".a", "a..b", "a[", "a[x]", "a[-1]", "[0]", "a[0]b",
        ] {
            assert!(parse_path(bad).is_err(), "{bad:?} should not parse");
        }
    }
}
