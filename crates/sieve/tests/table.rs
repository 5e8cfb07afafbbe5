//! A table of scripts and the actions each must give, for what the differential test
//! cannot ask Pigeonhole (ereject, our limits, include loops, error positions).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use posthorn_sieve::{
    Action, CompileError, Context, Envelope, Extension, Extensions, Limits, Location, Now,
    RuntimeError, Vacation, compile, run,
};

const MESSAGE: &[u8] = b"From: Alice <alice@example.org>\r\nTo: bob@example.com\r\nSubject: Hello\r\nDate: Sat, 13 Mar 2010 16:59:07 +0100\r\n\r\nHi Bob\r\n";

fn envelope(from: &str) -> Envelope {
    Envelope {
        from: from.into(),
        to: "bob@example.com".into(),
        auth: Some("alice".into()),
    }
}

fn include(name: &str, location: Location) -> Option<String> {
    match (name, location) {
        ("loop", _) => Some("require \"include\"; include \"loop\";".into()),
        ("file", Location::Personal) => Some("require \"fileinto\"; fileinto \"Included\";".into()),
        ("stopper", Location::Global) => Some("stop;".into()),
        ("broken", _) => Some("fileinto \"x\";".into()),
        _ => None,
    }
}

fn run_with(script: &str, from: &str, limits: &Limits) -> Result<Vec<Action>, RuntimeError> {
    let script =
        compile(script, &Extensions::all(), limits).unwrap_or_else(|e| panic!("{script}: {e}"));
    let envelope = envelope(from);
    let ctx = Context {
        message: MESSAGE,
        envelope: &envelope,
        spam_score: Some(9.0),
        virus: Some(1),
        now: Now {
            unix: 1_700_000_000,
            offset_minutes: 0,
        },
        include: &include,
    };
    run(&script, &ctx, limits)
}

fn actions(script: &str) -> Vec<Action> {
    run_with(script, "alice@example.org", &Limits::default()).unwrap()
}

fn keep() -> Action {
    Action::Keep { flags: vec![] }
}

fn store(mailbox: &str) -> Action {
    Action::FileInto {
        mailbox: mailbox.into(),
        flags: vec![],
        create: false,
        copy: false,
    }
}

fn compile_error(script: &str) -> CompileError {
    compile(script, &Extensions::all(), &Limits::default()).unwrap_err()
}

#[test]
fn scripts_give_their_actions() {
    let table: Vec<(&str, Vec<Action>)> = vec![
        ("", vec![keep()]),
        ("keep; keep;", vec![keep()]),
        ("discard;", vec![Action::Discard]),
        (
            "require \"ereject\"; ereject \"go away\";",
            vec![Action::Reject {
                reason: "go away".into(),
                extended: true,
            }],
        ),
        (
            "require \"fileinto\"; if header :is \"subject\" \"hello\" { fileinto \"A\"; } else { fileinto \"B\"; }",
            vec![store("A")],
        ),
        (
            "require [\"fileinto\", \"variables\"]; set \"f\" \"X\"; fileinto \"${f}.${undefined}.${1}\";",
            vec![store("X..")],
        ),
        (
            "require \"envelope\"; if envelope \"auth\" \"alice\" { discard; }",
            vec![Action::Discard],
        ),
        (
            "require \"spamtest\"; if spamtest :is \"9\" { discard; }",
            vec![Action::Discard],
        ),
        (
            "require \"virustest\"; if virustest :is \"1\" { discard; }",
            vec![Action::Discard],
        ),
        (
            "require \"include\"; include \"file\"; include :global \"stopper\"; keep;",
            vec![store("Included")],
        ),
        (
            "require \"include\"; include :optional \"absent\";",
            vec![keep()],
        ),
        (
            "require [\"imap4flags\", \"variables\", \"relational\"]; addflag \"mine\" [\"a\", \"b a\"]; if hasflag :count \"eq\" \"mine\" \"2\" { addflag \"\\\\Seen\"; }",
            vec![Action::Keep {
                flags: vec!["\\Seen".into()],
            }],
        ),
        (
            "require [\"variables\", \"relational\"]; set \"a\" \"1\"; if string :count \"eq\" [\"${a}\", \"\", \"x\"] \"2\" { discard; }",
            vec![Action::Discard],
        ),
        (
            "require \"date\"; if currentdate :zone \"+0100\" \"hour\" \"23\" { discard; }",
            vec![Action::Discard],
        ),
        (
            // A zone that is none: the local one (here UTC), as Pigeonhole does.
            "require \"date\"; if date :zone \"bogus\" \"date\" \"hour\" \"15\" { discard; }",
            vec![Action::Discard],
        ),
    ];
    for (script, expected) in table {
        assert_eq!(actions(script), expected, "script: {script}");
    }
}

#[test]
fn vacation_carries_what_the_caller_records() {
    let found = actions(
        "require \"vacation\"; vacation :days 2 :handle \"h\" :subject \"Away\" \"Back soon\";",
    );
    assert_eq!(
        found[0],
        Action::Vacation(Vacation {
            to: "alice@example.org".into(),
            subject: Some("Away".into()),
            from: None,
            reason: "Back soon".into(),
            mime: false,
            period_seconds: 2 * 86_400,
            handle: "h".into(),
        })
    );
    assert_eq!(found[1], keep());
    // RFC 5230 §4.6: no reply to the null sender, which envelope sees as "" (RFC 5228 §5.4).
    let script = "require [\"vacation\", \"envelope\"]; vacation \"x\"; if envelope :all :is \"from\" \"\" { discard; }";
    assert_eq!(
        run_with(script, "", &Limits::default()).unwrap(),
        vec![Action::Discard]
    );
}

#[test]
fn limits_stop_runaway_scripts() {
    let tight = Limits {
        max_steps: 5,
        ..Limits::default()
    };
    assert_eq!(
        run_with("keep; keep; keep; keep; keep; keep;", "a@b.c", &tight),
        Err(RuntimeError::TooManySteps(5))
    );
    let many_keys = format!(
        "if header :is \"subject\" [{}] {{ keep; }}",
        vec!["\"k\""; 50].join(",")
    );
    let tight = Limits {
        max_steps: 40,
        ..Limits::default()
    };
    assert_eq!(
        run_with(&many_keys, "a@b.c", &tight),
        Err(RuntimeError::TooManySteps(40))
    );
    let few = Limits {
        max_actions: 2,
        ..Limits::default()
    };
    assert_eq!(
        run_with(
            "require \"fileinto\"; fileinto \"a\"; fileinto \"b\"; fileinto \"c\";",
            "a@b.c",
            &few
        ),
        Err(RuntimeError::TooManyActions(2))
    );
    assert!(matches!(
        run_with(
            "require \"include\"; include \"loop\";",
            "a@b.c",
            &Limits::default()
        ),
        Err(RuntimeError::Include { .. })
    ));
    assert!(matches!(
        run_with(
            "require \"include\"; include \"broken\";",
            "a@b.c",
            &Limits::default()
        ),
        Err(RuntimeError::Include { .. })
    ));
    let small = Limits {
        max_script_bytes: 10,
        ..Limits::default()
    };
    assert!(compile("keep; keep; keep;", &Extensions::all(), &small).is_err());
    let deep = "if true {".repeat(40) + &"}".repeat(40);
    assert!(compile_error(&deep).message.contains("nesting"));
}

#[test]
fn compile_errors_name_the_problem_and_place() {
    let err = compile_error("require \"fileinto\";\n  filein \"x\";");
    assert_eq!(
        (err.line, err.column, err.message.as_str()),
        (2, 3, "unknown command 'filein'")
    );
    assert!(
        compile_error("fileinto \"x\";")
            .message
            .contains("require \"fileinto\"")
    );
    assert!(
        compile_error("require \"nonsense\";")
            .message
            .contains("unknown Sieve capability")
    );
    assert!(
        compile_error("keep; require \"fileinto\";")
            .message
            .contains("beginning")
    );
    assert!(
        compile_error("if header :regex \"a\" \"b\" {}")
            .message
            .contains(":regex")
    );
    assert!(compile_error("require \"comparator-i;ascii-numeric\"; if header :contains :comparator \"i;ascii-numeric\" \"a\" \"1\" {}").message.contains("does not support"));
    assert!(
        compile_error("if header :comparator \"i;ascii-numeric\" \"a\" \"1\" {}")
            .message
            .contains("not required")
    );
    assert!(
        compile_error("require \"variables\"; set :lower :upper \"a\" \"b\";")
            .message
            .contains("precedence")
    );
    assert!(
        compile_error("redirect \"not an address\";")
            .message
            .contains("invalid")
    );
    assert!(
        compile_error("elsif true {}")
            .message
            .contains("not preceded")
    );
    assert!(
        compile_error("if size 10 {}")
            .message
            .contains(":over or :under")
    );
    let limited = Extensions::all().without(Extension::Vacation);
    assert!(compile("require \"vacation\";", &limited, &Limits::default()).is_err());
}

#[test]
fn a_script_lists_its_includes_for_upload_checks() {
    let script = compile(
        "require \"include\";\ninclude :global \"spam\";\n\
         if true { include :optional \"mine\"; } else { include :global :once \"x\"; }\n",
        &Extensions::all(),
        &Limits::default(),
    )
    .unwrap();
    let found: Vec<_> = script
        .includes()
        .into_iter()
        .map(|i| (i.name, i.location, i.optional))
        .collect();
    assert_eq!(
        found,
        [
            ("spam", Location::Global, false),
            ("mine", Location::Personal, true),
            ("x", Location::Global, false),
        ]
    );
}
