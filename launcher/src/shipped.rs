//! Checks for the shipped mappers (`flywheel:generate`, `flywheel:embed`) that must hold before
//! any worker starts: known arguments with valid values, a local model directory, the input
//! column, and the Python libraries in the chosen interpreter.

use crate::error::{bad_input, CliError};
use anyhow::anyhow;
use arrow::datatypes::Schema as ArrowSchema;
use flywheel_protocol::JobOptions;
use std::path::PathBuf;
use std::process::Command;

/// (argument, what it takes) of each shipped mapper; `model` is required by both.
const GENERATE_ARGS: &[&str] = &[
    "model",
    "column",
    "output_column",
    "batch_size",
    "max_new_tokens",
    "temperature",
    "top_p",
    "dtype",
    "chat_template",
    "engine",
];
const EMBED_ARGS: &[&str] = &[
    "model",
    "column",
    "output_column",
    "batch_size",
    "max_length",
    "pooling",
    "normalize",
    "dtype",
];

fn one_of(name: &str, key: &str, value: &str, allowed: &[&str]) -> Result<(), CliError> {
    if allowed.contains(&value.to_ascii_lowercase().as_str()) {
        return Ok(());
    }
    Err(bad_input(anyhow!(
        "flywheel:{name}: --mapper-arg {key}={value}: expected one of {}",
        allowed.join(", ")
    )))
}

/// Which numbers an argument accepts.
type Range = dyn Fn(f64) -> bool;

fn number(name: &str, key: &str, value: &str, ok: &Range, what: &str) -> Result<(), CliError> {
    match value.trim().parse::<f64>() {
        Ok(v) if ok(v) => Ok(()),
        _ => Err(bad_input(anyhow!(
            "flywheel:{name}: --mapper-arg {key}={value}: expected {what}"
        ))),
    }
}

/// The modules `python` cannot import, of `modules`.
fn missing_modules(python: &str, modules: &[&str]) -> Result<Vec<String>, CliError> {
    let out = Command::new(python)
        .args([
            "-c",
            "import importlib.util, sys; print(' '.join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))",
        ])
        .args(modules)
        .output()
        .map_err(|e| bad_input(anyhow!("cannot run the Python '{python}' (--python): {e}")))?;
    if !out.status.success() {
        return Err(bad_input(anyhow!(
            "the Python '{python}' (--python) failed to start: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect())
}

/// The width of a model's hidden states, from its config.json.
fn hidden_size(config: &serde_json::Value) -> Option<u64> {
    [
        "hidden_size",
        "d_model",
        "n_embd",
        "dim",
        "word_embed_proj_dim",
    ]
    .iter()
    .find_map(|k| config[k].as_u64())
    .or_else(|| config["text_config"]["hidden_size"].as_u64())
}

/// Checks a shipped mapper's configuration against the input; returns the output schema (in
/// flywheel's language) when the mapper fixes one (`embed`: the input's columns plus
/// `vector<N, fp16>`). Makes the model path absolute in `job.mapper_args`.
pub fn preflight(
    job: &mut JobOptions,
    name: &str,
    input: &ArrowSchema,
) -> Result<Option<String>, CliError> {
    let (allowed, default_column, default_output) = match name {
        "embed" => (EMBED_ARGS, "text", "embedding"),
        _ => (GENERATE_ARGS, "prompt", "generated"),
    };
    for key in job.mapper_args.keys() {
        if !allowed.contains(&key.as_str()) {
            return Err(bad_input(anyhow!(
                "flywheel:{name} takes no --mapper-arg '{key}' (it takes: {})",
                allowed.join(", ")
            )));
        }
    }
    let args = job.mapper_args.clone();
    let get = |k: &str| args.get(k).map(String::as_str);
    // The model: a local directory with a config.json.
    let model = get("model").ok_or_else(|| {
        bad_input(anyhow!(
            "flywheel:{name} needs --mapper-arg model=DIR: a local model directory (config.json, weights, tokenizer); nothing is downloaded"
        ))
    })?;
    let dir = std::path::absolute(PathBuf::from(model))
        .map_err(|e| bad_input(anyhow!("model directory '{model}': {e}")))?;
    if !dir.is_dir() {
        return Err(bad_input(anyhow!(
            "flywheel:{name}: model directory {} does not exist",
            dir.display()
        )));
    }
    let config_path = dir.join("config.json");
    let config: serde_json::Value = std::fs::read(&config_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| {
            bad_input(anyhow!(
                "flywheel:{name}: {} has no readable config.json; is it a Hugging Face model directory?",
                dir.display()
            ))
        })?;
    job.mapper_args
        .insert("model".into(), dir.display().to_string());
    // The input column.
    let column = get("column").unwrap_or(default_column);
    if input.index_of(column).is_err() {
        let names: Vec<&str> = input.fields().iter().map(|f| f.name().as_str()).collect();
        return Err(bad_input(anyhow!(
            "flywheel:{name}: the input has no column '{column}' (columns: {}); choose one with --mapper-arg column=NAME",
            names.join(", ")
        )));
    }
    let output = get("output_column").unwrap_or(default_output);
    let added: &[&str] = if name == "embed" {
        &[output]
    } else {
        &[output, "prompt_tokens", "completion_tokens"]
    };
    for a in added {
        if input.index_of(a).is_ok() {
            return Err(bad_input(anyhow!(
                "flywheel:{name}: the input already has a column '{a}', which the output adds; rename the output with --mapper-arg output_column=NAME"
            )));
        }
    }
    // Values.
    let whole = |x: f64| x >= 1.0 && x.fract() == 0.0;
    let checks: [(&str, &Range, &str); 5] = [
        ("batch_size", &whole, "a whole number ≥ 1"),
        ("max_new_tokens", &whole, "a whole number ≥ 1"),
        ("max_length", &whole, "a whole number ≥ 1"),
        ("temperature", &|x| x >= 0.0, "a number ≥ 0 (0 is greedy)"),
        ("top_p", &|x| x > 0.0 && x <= 1.0, "a number in (0, 1]"),
    ];
    for (key, ok, what) in checks {
        if let Some(v) = get(key) {
            number(name, key, v, ok, what)?;
        }
    }
    if let Some(v) = get("dtype") {
        one_of(
            name,
            "dtype",
            v,
            &["auto", "float32", "float16", "bfloat16"],
        )?;
    }
    if let Some(v) = get("chat_template") {
        one_of(name, "chat_template", v, &["auto", "on", "off"])?;
    }
    if let Some(v) = get("engine") {
        one_of(name, "engine", v, &["auto", "vllm", "transformers"])?;
    }
    if let Some(v) = get("pooling") {
        one_of(name, "pooling", v, &["mean", "cls"])?;
    }
    if let Some(v) = get("normalize") {
        one_of(
            name,
            "normalize",
            v,
            &["true", "false", "1", "0", "yes", "no", "on", "off"],
        )?;
    }
    // The libraries, in the Python the workers will run.
    let engine = get("engine").unwrap_or("auto").to_ascii_lowercase();
    let wanted: &[&str] = match (name, engine.as_str()) {
        ("generate", "vllm") => &["vllm"],
        ("generate", "auto") => &["vllm", "torch", "transformers"],
        _ => &["torch", "transformers"],
    };
    let missing = missing_modules(&job.python, wanted)?;
    let lacking: Vec<&str> =
        if name == "generate" && engine == "auto" && !missing.iter().any(|m| m == "vllm") {
            Vec::new()
        } else {
            ["torch", "transformers", "vllm"]
                .into_iter()
                .filter(|m| missing.iter().any(|x| x == m))
                .filter(|m| *m != "vllm" || engine == "vllm")
                .collect()
        };
    if !lacking.is_empty() {
        return Err(bad_input(anyhow!(
            "flywheel:{name} needs {} in the Python '{}', which cannot import {}: install with `{} -m pip install {}`, or choose another interpreter with --python",
            if engine == "vllm" { "vllm" } else { "torch and transformers (or vLLM)" },
            job.python,
            lacking.join(", "),
            job.python,
            lacking.join(" ")
        )));
    }
    if name != "embed" || job.schema.is_some() {
        return Ok(None);
    }
    // embed: the input's columns, then the vector.
    let width = hidden_size(&config).ok_or_else(|| {
        bad_input(anyhow!(
            "flywheel:embed: {} gives no hidden size (hidden_size, d_model, n_embd or dim); give the output schema with --schema",
            config_path.display()
        ))
    })?;
    let mut fields = Vec::new();
    for f in input.fields() {
        let ours = flywheel_formats::Field::from_arrow(f).ok_or_else(|| {
            bad_input(anyhow!(
                "flywheel:embed: input column '{}' ({}) has no type in flywheel's schema language; give the output schema with --schema",
                f.name(),
                f.data_type()
            ))
        })?;
        fields.push(format!("{}: {}?", ours.name, ours.ty));
    }
    fields.push(format!("{output}: vector<{width}, fp16>"));
    Ok(Some(fields.join(" | ")))
}
