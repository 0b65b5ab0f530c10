//! Runs the logic of the examples, so that they are checked by `cargo test` (each example
//! file is compiled into this test as a module).

#[allow(dead_code)]
#[path = "../examples/embed.rs"]
mod embed;

#[allow(dead_code)]
#[path = "../examples/custom_calculator.rs"]
mod custom_calculator;

#[test]
fn embed_example_passes_words_through() {
    let got = embed::run(&["hello", "from", "mediagraph"]).expect("the example graph runs");
    assert_eq!(
        got,
        [
            (0, "hello".to_string()),
            (1000, "from".to_string()),
            (2000, "mediagraph".to_string()),
        ]
    );
}

#[test]
fn custom_calculator_example_scales() {
    let got = custom_calculator::run(5, 3).expect("the example graph runs");
    assert_eq!(got, [0, 3, 6, 9, 12]);
}

#[test]
fn custom_calculator_is_short() {
    // The calculator and its registration: everything before `pub fn run`'s body starts,
    // without comments and blank lines, plus the `register` line.
    let text = include_str!("../examples/custom_calculator.rs");
    let body = &text[..text.find("pub fn run").expect("run is defined")];
    let code = body
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("//"))
        .count()
        + 1;
    assert!(code < 40, "{code} lines");
}

#[test]
fn embed_example_reads_stats() {
    let table = embed::stats().expect("the example graph runs");
    let first = table
        .lines()
        .find(|l| l.starts_with("first "))
        .expect("a row for node first");
    assert!(first.contains("PassThroughCalculator"), "{table}");
    assert!(first.split_whitespace().any(|w| w == "100"), "{table}");
}
