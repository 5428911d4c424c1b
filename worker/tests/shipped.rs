//! The shipped mappers' Python classes take exactly the arguments of their table
//! (`flywheel_protocol::ShippedMapper`), as the worker hands them over: every one, typed, with
//! its default. A name added to one side only fails here, without torch.

use flywheel_protocol::ShippedMapper;
use std::collections::BTreeMap;
use std::process::Command;

fn python() -> String {
    std::env::var("FLYWHEEL_TEST_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// Builds the class with `args` (JSON) in flywheel_shipped.py; returns its stderr on failure.
fn construct(mapper: ShippedMapper, args: &serde_json::Value) -> Result<(), String> {
    let runner = flywheel_worker::python_runner_path().expect("the runner is installed");
    let dir = runner.parent().expect("the runner's directory");
    let code = "import json, sys\nsys.path.insert(0, sys.argv[1])\nimport flywheel_shipped as s\ngetattr(s, sys.argv[2])(**json.loads(sys.argv[3]))";
    let out = Command::new(python())
        .args(["-c", code])
        .arg(dir)
        .arg(mapper.class())
        .arg(args.to_string())
        .output()
        .expect("python starts");
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn each_shipped_class_takes_the_arguments_of_its_table() {
    for mapper in ShippedMapper::ALL {
        let given: BTreeMap<String, String> = mapper
            .dir_args()
            .map(|k| (k.to_string(), "/models/m".to_string()))
            .collect();
        let args =
            serde_json::Value::Object(mapper.python_args(&given).expect("the defaults are valid"));
        construct(mapper, &args).unwrap_or_else(|e| panic!("{mapper}: {e}"));
        // One more, or one fewer, is refused: the class declares no defaults of its own.
        let mut more = args.clone();
        more["no_such_arg"] = serde_json::json!(1);
        let err = construct(mapper, &more).expect_err("an argument the table lacks");
        assert!(err.contains("no_such_arg"), "{mapper}: {err}");
        let mut fewer = args.clone();
        fewer.as_object_mut().expect("an object").remove("column");
        let err = construct(mapper, &fewer).expect_err("an argument the table has");
        assert!(err.contains("column"), "{mapper}: {err}");
    }
}
