//! The mappers shipped with flywheel (`flywheel:generate`, `flywheel:embed`) and their
//! arguments, in one table: it drives the `--mapper-arg` check (names, required arguments,
//! values), the `--help` text, and what the Python classes receive — every argument, typed
//! (numbers as numbers, flags as booleans, choices in lowercase), with its default filled in.
//! `python/flywheel/_shipped.py` declares neither defaults nor checks of its own.

use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt;

/// A Python mapper shipped with flywheel (`--mapper flywheel:NAME`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ShippedMapper {
    /// A causal language model over a prompt column.
    Generate,
    /// A text encoder over a text column.
    Embed,
}

/// What an argument takes.
#[derive(Debug, Clone, Copy)]
pub enum ArgKind {
    /// A local directory (made absolute against the job file's directory).
    Dir,
    /// Free text (a column name).
    Text,
    /// A whole number ≥ 1 (Python receives an integer).
    Count,
    /// A number `ok` accepts, described by `what` (Python receives a float).
    Number {
        ok: fn(f64) -> bool,
        what: &'static str,
    },
    /// One of these words, in any case (Python receives it in lowercase).
    OneOf(&'static [&'static str]),
    /// true or false, or a synonym (Python receives a boolean).
    Flag,
}

/// An argument's value when it is not given.
#[derive(Debug, Clone, Copy)]
pub enum ArgDefault {
    /// None: the argument must be given.
    Required,
    /// This value, as if given.
    Is(&'static str),
    /// One value for each engine of `generate`, chosen when the engine is (Python receives
    /// `{"transformers": …, "vllm": …}`).
    ByEngine {
        transformers: &'static str,
        vllm: &'static str,
    },
}

/// One `--mapper-arg KEY=VALUE` a shipped mapper takes.
#[derive(Debug, Clone, Copy)]
pub struct ShippedArg {
    pub key: &'static str,
    pub kind: ArgKind,
    pub default: ArgDefault,
    /// What it is, for `--help`.
    pub help: &'static str,
}

fn at_least_zero(x: f64) -> bool {
    x >= 0.0
}

fn in_unit_interval(x: f64) -> bool {
    x > 0.0 && x <= 1.0
}

const FLAG_WORDS: &[&str] = &["true", "false", "1", "0", "yes", "no", "on", "off"];
const DTYPES: &[&str] = &["auto", "float32", "float16", "bfloat16"];

const MODEL: ShippedArg = ShippedArg {
    key: "model",
    kind: ArgKind::Dir,
    default: ArgDefault::Required,
    help: "a local model directory (config.json, weights, tokenizer); nothing is downloaded",
};
const DTYPE: ShippedArg = ShippedArg {
    key: "dtype",
    kind: ArgKind::OneOf(DTYPES),
    default: ArgDefault::Is("auto"),
    help: "the weights' type (auto: float16 on a GPU, else float32)",
};

const GENERATE_ARGS: &[ShippedArg] = &[
    MODEL,
    ShippedArg {
        key: "column",
        kind: ArgKind::Text,
        default: ArgDefault::Is("prompt"),
        help: "the prompt column",
    },
    ShippedArg {
        key: "output_column",
        kind: ArgKind::Text,
        default: ArgDefault::Is("generated"),
        help: "the generated text's column",
    },
    ShippedArg {
        key: "batch_size",
        kind: ArgKind::Count,
        default: ArgDefault::ByEngine {
            transformers: "16",
            vllm: "512",
        },
        help: "rows per generate call",
    },
    ShippedArg {
        key: "max_new_tokens",
        kind: ArgKind::Count,
        default: ArgDefault::Is("128"),
        help: "tokens to generate at most",
    },
    ShippedArg {
        key: "temperature",
        kind: ArgKind::Number {
            ok: at_least_zero,
            what: "a number ≥ 0 (0 is greedy)",
        },
        default: ArgDefault::Is("0"),
        help: "sampling temperature; 0 is greedy",
    },
    ShippedArg {
        key: "top_p",
        kind: ArgKind::Number {
            ok: in_unit_interval,
            what: "a number in (0, 1]",
        },
        default: ArgDefault::Is("1.0"),
        help: "nucleus sampling mass",
    },
    DTYPE,
    ShippedArg {
        key: "chat_template",
        kind: ArgKind::OneOf(&["auto", "on", "off"]),
        default: ArgDefault::Is("auto"),
        help: "wrap each prompt as a user turn with the tokenizer's chat template (auto: when it has one)",
    },
    ShippedArg {
        key: "engine",
        kind: ArgKind::OneOf(&["auto", "vllm", "transformers"]),
        default: ArgDefault::Is("auto"),
        help: "the library that generates (auto: vLLM when importable)",
    },
];

const EMBED_ARGS: &[ShippedArg] = &[
    MODEL,
    ShippedArg {
        key: "column",
        kind: ArgKind::Text,
        default: ArgDefault::Is("text"),
        help: "the text column",
    },
    ShippedArg {
        key: "output_column",
        kind: ArgKind::Text,
        default: ArgDefault::Is("embedding"),
        help: "the vector's column",
    },
    ShippedArg {
        key: "batch_size",
        kind: ArgKind::Count,
        default: ArgDefault::Is("32"),
        help: "rows per forward pass",
    },
    ShippedArg {
        key: "max_length",
        kind: ArgKind::Count,
        default: ArgDefault::Is("512"),
        help: "tokens per text at most; longer texts are cut",
    },
    ShippedArg {
        key: "pooling",
        kind: ArgKind::OneOf(&["mean", "cls"]),
        default: ArgDefault::Is("mean"),
        help: "how token vectors become one",
    },
    ShippedArg {
        key: "normalize",
        kind: ArgKind::Flag,
        default: ArgDefault::Is("true"),
        help: "scale each vector to length 1",
    },
    DTYPE,
];

/// Why a shipped mapper's arguments were refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ShippedArgError {
    /// An argument the mapper does not take.
    #[error("flywheel:{mapper} takes no --mapper-arg '{key}' (it takes: {takes})")]
    Unknown {
        mapper: ShippedMapper,
        key: String,
        takes: String,
    },
    /// A required argument not given.
    #[error("flywheel:{mapper} needs --mapper-arg {key}={placeholder}: {help}")]
    Missing {
        mapper: ShippedMapper,
        key: &'static str,
        placeholder: &'static str,
        help: &'static str,
    },
    /// A value the argument does not take.
    #[error("flywheel:{mapper}: --mapper-arg {key}={value}: expected {expected}")]
    Value {
        mapper: ShippedMapper,
        key: &'static str,
        value: String,
        expected: String,
    },
}

impl ArgKind {
    /// The value Python receives for `value`, or what the argument expects ("a number in …").
    fn parse(self, value: &str) -> Result<Value, String> {
        let number = |what: &str| value.trim().parse::<f64>().map_err(|_| what.to_string());
        let choice = |allowed: &[&str]| {
            let v = value.to_ascii_lowercase();
            if allowed.contains(&v.as_str()) {
                Ok(v)
            } else {
                Err(format!("one of {}", allowed.join(", ")))
            }
        };
        match self {
            ArgKind::Dir | ArgKind::Text => Ok(Value::from(value)),
            ArgKind::Count => {
                let what = "a whole number ≥ 1";
                match number(what)? {
                    x if x >= 1.0 && x.fract() == 0.0 && x <= u64::MAX as f64 => {
                        Ok(Value::from(x as u64))
                    }
                    _ => Err(what.to_string()),
                }
            }
            ArgKind::Number { ok, what } => match number(what)? {
                x if x.is_finite() && ok(x) => Ok(Value::from(x)),
                _ => Err(what.to_string()),
            },
            ArgKind::OneOf(allowed) => choice(allowed).map(Value::from),
            ArgKind::Flag => {
                let word = choice(FLAG_WORDS)?;
                Ok(Value::Bool(matches!(
                    word.as_str(),
                    "true" | "1" | "yes" | "on"
                )))
            }
        }
    }

    /// How `--help` shows what the argument takes.
    fn shown(self) -> Option<String> {
        match self {
            ArgKind::OneOf(allowed) => Some(allowed.join("|")),
            ArgKind::Flag => Some("true|false".to_string()),
            _ => None,
        }
    }
}

impl ShippedMapper {
    /// Every shipped mapper, in the order `--help` and messages list them.
    pub const ALL: [ShippedMapper; 2] = [ShippedMapper::Generate, ShippedMapper::Embed];

    /// The name after `flywheel:`.
    pub fn name(self) -> &'static str {
        match self {
            ShippedMapper::Generate => "generate",
            ShippedMapper::Embed => "embed",
        }
    }

    /// The mapper `flywheel:NAME` names, if any.
    pub fn from_name(name: &str) -> Option<ShippedMapper> {
        ShippedMapper::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Its class in `python/flywheel/_shipped.py`.
    pub fn class(self) -> &'static str {
        match self {
            ShippedMapper::Generate => "Generate",
            ShippedMapper::Embed => "Embed",
        }
    }

    /// What it does, for `--help`.
    pub fn summary(self) -> &'static str {
        match self {
            ShippedMapper::Generate => "a causal LM over a prompt column (vLLM when importable, else transformers);\nadds the generated text and prompt_tokens, completion_tokens",
            ShippedMapper::Embed => "a text encoder over a text column (transformers); adds vector<N, fp16>",
        }
    }

    /// The arguments it takes.
    pub fn args(self) -> &'static [ShippedArg] {
        match self {
            ShippedMapper::Generate => GENERATE_ARGS,
            ShippedMapper::Embed => EMBED_ARGS,
        }
    }

    fn arg(self, key: &str) -> Option<&'static ShippedArg> {
        self.args().iter().find(|a| a.key == key)
    }

    /// The text of argument `key`: as given, else its default (the transformers one for a
    /// default by engine); `None` for a required argument not given or one it does not take.
    pub fn text_of<'a>(self, args: &'a BTreeMap<String, String>, key: &str) -> Option<&'a str> {
        if let Some(v) = args.get(key) {
            return Some(v);
        }
        match self.arg(key)?.default {
            ArgDefault::Required => None,
            ArgDefault::Is(v)
            | ArgDefault::ByEngine {
                transformers: v, ..
            } => Some(v),
        }
    }

    /// Refuses an argument it does not take, and a required one not given.
    pub fn check_keys(self, args: &BTreeMap<String, String>) -> Result<(), ShippedArgError> {
        if let Some(key) = args.keys().find(|k| self.arg(k).is_none()) {
            return Err(ShippedArgError::Unknown {
                mapper: self,
                key: key.clone(),
                takes: self
                    .args()
                    .iter()
                    .map(|a| a.key)
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        match self
            .args()
            .iter()
            .find(|a| matches!(a.default, ArgDefault::Required) && !args.contains_key(a.key))
        {
            Some(a) => Err(ShippedArgError::Missing {
                mapper: self,
                key: a.key,
                placeholder: placeholder(a.kind),
                help: a.help,
            }),
            None => Ok(()),
        }
    }

    /// Every argument as the Python class receives it: typed, defaults filled in. Refuses what
    /// [`ShippedMapper::check_keys`] refuses, and a value its argument does not take.
    pub fn python_args(
        self,
        args: &BTreeMap<String, String>,
    ) -> Result<Map<String, Value>, ShippedArgError> {
        self.check_keys(args)?;
        let mut out = Map::new();
        for a in self.args() {
            let parse = |value: &str| {
                a.kind
                    .parse(value)
                    .map_err(|expected| ShippedArgError::Value {
                        mapper: self,
                        key: a.key,
                        value: value.to_string(),
                        expected,
                    })
            };
            let value = match (args.get(a.key), a.default) {
                (Some(v), _) => parse(v)?,
                (None, ArgDefault::Is(v)) => parse(v)?,
                (None, ArgDefault::ByEngine { transformers, vllm }) => {
                    let mut by = Map::new();
                    by.insert("transformers".into(), parse(transformers)?);
                    by.insert("vllm".into(), parse(vllm)?);
                    Value::Object(by)
                }
                // check_keys refused it.
                (None, ArgDefault::Required) => continue,
            };
            out.insert(a.key.to_string(), value);
        }
        Ok(out)
    }

    /// The keys of its arguments that name directories.
    pub fn dir_args(self) -> impl Iterator<Item = &'static str> {
        self.args()
            .iter()
            .filter(|a| matches!(a.kind, ArgKind::Dir))
            .map(|a| a.key)
    }

    /// Its block of `flywheel map --help`: what it does and each argument with its default.
    pub fn help(self) -> String {
        let mut text = String::new();
        let mut summary = self.summary().lines();
        let head = format!("flywheel:{}", self.name());
        text += &format!("  {head:<19}{}\n", summary.next().unwrap_or_default());
        for line in summary {
            text += &format!("  {:<19}{line}\n", "");
        }
        for a in self.args() {
            let given = match a.default {
                ArgDefault::Required => format!("{}={}", a.key, placeholder(a.kind)),
                ArgDefault::Is(v) => format!("{}={v}", a.key),
                ArgDefault::ByEngine { transformers, .. } => format!("{}={transformers}", a.key),
            };
            let mut what = a.help.to_string();
            if let Some(shown) = a.kind.shown() {
                what = format!("{shown}: {what}");
            }
            match a.default {
                ArgDefault::Required => what += " (required)",
                ArgDefault::ByEngine { vllm, .. } => what += &format!(" ({vllm} with vLLM)"),
                ArgDefault::Is(_) => {}
            }
            text += &hanging(&format!("      {given:<26}"), &what);
        }
        text
    }
}

/// `head` then `text`, wrapped at 98 columns, its continuation lines indented under the text.
fn hanging(head: &str, text: &str) -> String {
    const WIDTH: usize = 98;
    let indent = " ".repeat(head.chars().count());
    let mut out = head.to_string();
    let mut column = out.chars().count();
    let mut first = true;
    for word in text.split(' ') {
        let len = word.chars().count();
        if !first && column + 1 + len > WIDTH {
            out += "\n";
            out += &indent;
            column = indent.len();
        } else if !first {
            out.push(' ');
            column += 1;
        }
        out += word;
        column += len;
        first = false;
    }
    out + "\n"
}

/// How `--help` and messages name the value of a required argument.
fn placeholder(kind: ArgKind) -> &'static str {
    match kind {
        ArgKind::Dir => "DIR",
        _ => "VALUE",
    }
}

impl fmt::Display for ShippedMapper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn python_receives_every_argument_typed_with_its_defaults() {
        let got = ShippedMapper::Embed
            .python_args(&args(&[
                ("model", "/m"),
                ("normalize", "OFF"),
                ("pooling", "CLS"),
            ]))
            .expect("valid arguments");
        assert_eq!(
            Value::Object(got),
            json!({"model": "/m", "column": "text", "output_column": "embedding", "batch_size": 32,
                   "max_length": 512, "pooling": "cls", "normalize": false, "dtype": "auto"})
        );
        let got = ShippedMapper::Generate
            .python_args(&args(&[
                ("model", "/m"),
                ("temperature", "0.7"),
                ("batch_size", "8"),
            ]))
            .expect("valid arguments");
        assert_eq!(got["temperature"], json!(0.7));
        assert_eq!(got["batch_size"], json!(8));
        assert_eq!(got["top_p"], json!(1.0));
        let by_engine = ShippedMapper::Generate
            .python_args(&args(&[("model", "/m")]))
            .expect("valid arguments");
        assert_eq!(
            by_engine["batch_size"],
            json!({"transformers": 16, "vllm": 512})
        );
    }

    #[test]
    fn bad_arguments_are_named_with_what_they_take() {
        let err = |m: ShippedMapper, a: &[(&str, &str)]| {
            m.python_args(&args(a)).expect_err("refused").to_string()
        };
        assert_eq!(
            err(ShippedMapper::Embed, &[("model", "/m"), ("temperature", "1")]),
            "flywheel:embed takes no --mapper-arg 'temperature' (it takes: model, column, output_column, batch_size, max_length, pooling, normalize, dtype)"
        );
        assert_eq!(
            err(ShippedMapper::Generate, &[]),
            "flywheel:generate needs --mapper-arg model=DIR: a local model directory (config.json, weights, tokenizer); nothing is downloaded"
        );
        assert_eq!(
            err(ShippedMapper::Generate, &[("model", "/m"), ("top_p", "2")]),
            "flywheel:generate: --mapper-arg top_p=2: expected a number in (0, 1]"
        );
        assert_eq!(
            err(
                ShippedMapper::Generate,
                &[("model", "/m"), ("batch_size", "1.5")]
            ),
            "flywheel:generate: --mapper-arg batch_size=1.5: expected a whole number ≥ 1"
        );
        assert_eq!(
            err(
                ShippedMapper::Generate,
                &[("model", "/m"), ("engine", "tgi")]
            ),
            "flywheel:generate: --mapper-arg engine=tgi: expected one of auto, vllm, transformers"
        );
        assert_eq!(
            err(ShippedMapper::Embed, &[("model", "/m"), ("normalize", "maybe")]),
            "flywheel:embed: --mapper-arg normalize=maybe: expected one of true, false, 1, 0, yes, no, on, off"
        );
    }

    #[test]
    fn every_default_is_a_value_its_argument_takes_and_help_names_each_argument() {
        for m in ShippedMapper::ALL {
            assert_eq!(ShippedMapper::from_name(m.name()), Some(m));
            let mut given = BTreeMap::new();
            for d in m.dir_args() {
                given.insert(d.to_string(), "/m".to_string());
            }
            m.python_args(&given).expect("the defaults are valid");
            let help = m.help();
            for a in m.args() {
                assert!(help.contains(&format!("{}=", a.key)), "{help}");
            }
        }
        let help = ShippedMapper::Generate.help();
        assert!(help.contains("batch_size=16"), "{help}");
        assert!(help.contains("(512 with vLLM)"), "{help}");
        assert!(help.contains("engine=auto"), "{help}");
        assert!(help.contains("auto|vllm|transformers"), "{help}");
        assert!(help.contains("model=DIR"), "{help}");
    }
}
