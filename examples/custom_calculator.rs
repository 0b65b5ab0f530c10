//! Writing and registering a calculator of one's own, then using it from YAML.
//!
//! `cargo run --example custom_calculator`

use mediagraph::prelude::*;

/// Multiplies every integer by the `factor` option.
struct Scale {
    factor: i64,
}

/// Its options (`options: {factor: 3}`); unknown fields are refused.
#[derive(Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScaleOptions {
    factor: i64,
}

const IN: Input<i64> = Input::new("");
const OUT: Output<i64> = Output::new("");

impl Calculator for Scale {
    type Options = ScaleOptions;
    fn contract(cc: &mut Contract, _: &ScaleOptions) -> Result<()> {
        cc.declare(&[&IN, &OUT])
    }
    fn create(options: &ScaleOptions) -> Result<Self> {
        Ok(Scale {
            factor: options.factor,
        })
    }
    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
        if let Some(v) = cx.input(&IN).get()? {
            let ts = cx.input_timestamp();
            cx.output(&OUT).send(v * self.factor, ts)?;
        }
        Ok(Flow::Continue)
    }
}

/// Registers `ScaleCalculator`, runs `0..n` through it with `factor`, returns the outputs.
pub fn run(n: i64, factor: i64) -> Result<Vec<i64>> {
    mediagraph::calculator::register::<Scale>("ScaleCalculator");
    let yaml = format!(
        "input_stream: in\noutput_stream: out\nnode:\n  - calculator: ScaleCalculator\n    input_stream: in\n    output_stream: out\n    options: {{factor: {factor}}}\n"
    );
    let mut graph = mediagraph::Graph::from_yaml_str(&yaml)?;
    let out = graph.add_output_stream_poller("out")?;
    graph.start_run(Default::default())?;
    for i in 0..n {
        graph.add_packet("in", Packet::new(i).at(Timestamp::new(i)))?;
    }
    graph.finish()?;
    std::iter::from_fn(|| out.next())
        .map(|p| p.get::<i64>().copied())
        .collect()
}

fn main() -> std::process::ExitCode {
    match run(5, 3) {
        Ok(values) => {
            println!("{values:?}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
