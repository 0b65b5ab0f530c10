//! Runs the logic of `examples/embed.rs`, so that the example is checked by `cargo test` (the
//! example file is compiled into this test as a module).

#[allow(dead_code)]
#[path = "../examples/embed.rs"]
mod embed;

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
