//! Slurm hostlist expressions, as in `SLURM_JOB_NODELIST`:
//! `gpu[01-04,07]`, `a1,b[1-2]`, `rack[1-2]-node[01-02]`.

/// A hostlist that does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid hostlist '{list}': {reason}")]
pub struct HostlistError {
    pub list: String,
    pub reason: String,
}

/// Expands a hostlist into host names, in order.
pub fn expand_hostlist(list: &str) -> Result<Vec<String>, HostlistError> {
    let err = |reason: &str| HostlistError {
        list: list.to_string(),
        reason: reason.to_string(),
    };
    let mut hosts = Vec::new();
    for item in split_top_level(list).map_err(|r| err(&r))? {
        if item.is_empty() {
            continue;
        }
        hosts.extend(expand_item(&item).map_err(|r| err(&r))?);
    }
    Ok(hosts)
}

/// Splits at commas outside brackets.
fn split_top_level(list: &str) -> Result<Vec<String>, String> {
    let (mut out, mut cur, mut depth) = (Vec::new(), String::new(), 0i32);
    for c in list.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            ',' if depth == 0 => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        if !(0..=1).contains(&depth) {
            return Err("unbalanced or nested brackets".into());
        }
        cur.push(c);
    }
    if depth != 0 {
        return Err("unbalanced brackets".into());
    }
    out.push(cur);
    Ok(out)
}

/// Expands one item with any number of bracket groups (the cartesian product, left to right).
fn expand_item(item: &str) -> Result<Vec<String>, String> {
    let Some(open) = item.find('[') else {
        return Ok(vec![item.to_string()]);
    };
    let close = item[open..]
        .find(']')
        .map(|i| i + open)
        .ok_or("unbalanced brackets")?;
    let (prefix, body, rest) = (&item[..open], &item[open + 1..close], &item[close + 1..]);
    let tails = expand_item(rest)?;
    let mut out = Vec::new();
    for range in body.split(',') {
        let (lo, hi) = range.split_once('-').unwrap_or((range, range));
        if lo.is_empty()
            || !lo.bytes().all(|b| b.is_ascii_digit())
            || !hi.bytes().all(|b| b.is_ascii_digit())
            || hi.is_empty()
        {
            return Err(format!("bad range '{range}'"));
        }
        let width = lo.len();
        let (a, b): (u64, u64) = (
            lo.parse().map_err(|_| "range too large")?,
            hi.parse().map_err(|_| "range too large")?,
        );
        if a > b {
            return Err(format!("descending range '{range}'"));
        }
        if b - a > 100_000 {
            return Err(format!("range '{range}' is too long"));
        }
        for n in a..=b {
            for t in &tails {
                out.push(format!("{prefix}{n:0width$}{t}"));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(s: &str) -> Vec<String> {
        expand_hostlist(s).unwrap()
    }

    #[test]
    fn expands_slurm_forms() {
        assert_eq!(ex("node1"), vec!["node1"]);
        assert_eq!(
            ex("gpu[01-04,07]"),
            vec!["gpu01", "gpu02", "gpu03", "gpu04", "gpu07"]
        );
        assert_eq!(ex("a1,b[1-2],c"), vec!["a1", "b1", "b2", "c"]);
        assert_eq!(ex("n[8-11]"), vec!["n8", "n9", "n10", "n11"]);
        assert_eq!(
            ex("r[1-2]-n[01-02]"),
            vec!["r1-n01", "r1-n02", "r2-n01", "r2-n02"]
        );
        assert_eq!(ex("n[007]"), vec!["n007"]);
    }

    #[test]
    fn rejects_malformed_lists() {
        for bad in ["n[1-", "n1-2]", "n[a-b]", "n[3-1]", "n[[1]]"] {
            assert!(expand_hostlist(bad).is_err(), "{bad}");
        }
        assert_eq!(
            expand_hostlist("n[3-1]").unwrap_err().to_string(),
            "invalid hostlist 'n[3-1]': descending range '3-1'"
        );
    }
}
