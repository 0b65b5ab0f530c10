//! `MuxCalculator`: one of several streams, chosen per timestamp by a control stream.

use mediagraph_framework::contract::TypeDecl;
use mediagraph_framework::prelude::*;
use mediagraph_framework::{HandlerConfig, PortKind};

/// At each timestamp of `SELECT`, emits the packet of `INPUT:k`, k being the `SELECT` value
/// (MediaPipe's `MuxCalculator`). With `RoundRobinDemuxCalculator` in front, it puts the
/// outputs of parallel branches (say, two copies of a slow node, each on an executor of its
/// own) back into one stream, in order.
///
/// * Input streams: `INPUT:0..n` (n >= 1, one type), `SELECT` (i32, the index to take).
/// * Output stream: `OUTPUT` (the inputs' type).
/// * Options: none. Timestamp offset 0.
///
/// Uses `MuxInputStreamHandler`: a timestamp is ready when `SELECT` has a packet there and the
/// selected input has its packet (or is known to have none); the other inputs' packets at or
/// below it can never be selected and are dropped (counted in the node's `dropped`). A
/// `SELECT` value that names no input fails the run, naming the node and the timestamp.
///
/// ```yaml
/// - calculator: RoundRobinDemuxCalculator
///   input_stream: [frames]
///   output_stream: ["OUTPUT:0:frames_a", "OUTPUT:1:frames_b", "SELECT:which"]
/// - {calculator: ObjectDetectionSubgraph, input_stream: ["IMAGE:frames_a"], output_stream: ["DETECTIONS:a"], executor: infer_a}
/// - {calculator: ObjectDetectionSubgraph, input_stream: ["IMAGE:frames_b"], output_stream: ["DETECTIONS:b"], executor: infer_b}
/// - calculator: MuxCalculator
///   input_stream: ["INPUT:0:a", "INPUT:1:b", "SELECT:which"]
///   output_stream: ["OUTPUT:detections"]
/// ```
pub struct MuxCalculator;

const INPUT: Input<AnyPacket> = Input::any("INPUT").multiple();
const SELECT: Input<i32> = Input::new("SELECT");
const OUTPUT: Output<AnyPacket> = Output::any("OUTPUT");

impl Calculator for MuxCalculator {
    type Options = NoOptions;

    fn contract(cc: &mut Contract, _: &NoOptions) -> Result<()> {
        cc.declare(&[&INPUT, &SELECT, &OUTPUT])?;
        let inputs: Vec<usize> = cc.inputs().ids("INPUT").collect();
        let Some(&first) = inputs.first() else {
            return Err(cc.error(crate::Error::Config {
                calculator: "MuxCalculator",
                message: "needs at least one INPUT stream".into(),
            }));
        };
        for &id in &inputs[1..] {
            cc.set_type(
                PortKind::Input,
                id,
                TypeDecl::SameAs(PortKind::Input, first),
            );
        }
        cc.set_type(
            PortKind::Output,
            0,
            TypeDecl::SameAs(PortKind::Input, first),
        );
        cc.set_input_stream_handler(HandlerConfig::named("MuxInputStreamHandler"));
        cc.set_timestamp_offset(0);
        Ok(())
    }

    fn create(_: &NoOptions) -> Result<Self> {
        Ok(MuxCalculator)
    }

    fn process(&mut self, cx: &mut CalculatorContext) -> Result<Flow> {
        let select = *cx.input(&SELECT).value()?;
        let count = cx.input_count(&INPUT);
        let k = usize::try_from(select).ok().filter(|&k| k < count);
        let Some(k) = k else {
            return Err(crate::Error::BadInput {
                calculator: "MuxCalculator",
                port: "SELECT",
                message: format!("{select} names no input (there are INPUT:0..{count})"),
            }
            .into());
        };
        let packet = cx.input_index(&INPUT, k).packet();
        if !packet.is_empty() {
            let packet = packet.clone();
            cx.output(&OUTPUT).send_packet(packet)?;
        }
        Ok(Flow::Continue)
    }
}

mediagraph_framework::register_calculator!(MuxCalculator, "MuxCalculator");

#[cfg(test)]
mod tests {
    use crate::test_util::*;

    const MUX: &str = "input_stream: [a, b, sel]\nnode:\n  - calculator: MuxCalculator\n    input_stream: [\"INPUT:0:a\", \"INPUT:1:b\", \"SELECT:sel\"]\n    output_stream: [\"OUTPUT:out\"]\n";

    #[test]
    fn takes_the_selected_input_at_each_control_timestamp() {
        let mut g = graph(MUX);
        let out = record(&mut g, "out");
        g.start_run(Default::default()).unwrap();
        // The control arrives first; each data packet comes later, out of step with the
        // other input (as from two parallel branches).
        for (t, k) in [(1, 0i32), (2, 1), (3, 1), (4, 0), (5, 0)] {
            g.add_packet("sel", at(k, t)).unwrap();
        }
        for (t, v) in [(2, 20i64), (3, 30)] {
            g.add_packet("b", at(v, t)).unwrap();
        }
        for (t, v) in [(1, 10i64), (4, 40), (5, 50)] {
            g.add_packet("a", at(v, t)).unwrap();
        }
        g.finish().unwrap();
        assert_eq!(
            out.values::<i64>(),
            vec![
                (ts(1), 10),
                (ts(2), 20),
                (ts(3), 30),
                (ts(4), 40),
                (ts(5), 50)
            ]
        );
    }

    #[test]
    fn unselected_packets_are_dropped_and_counted() {
        let mut g = graph(MUX);
        let out = record(&mut g, "out");
        g.start_run(Default::default()).unwrap();
        // b has packets at 1 and 2 that are never selected; a's packet at 3 is selected.
        g.add_packet("b", at(1i64, 1)).unwrap();
        g.add_packet("b", at(2i64, 2)).unwrap();
        g.add_packet("a", at(3i64, 3)).unwrap();
        g.add_packet("sel", at(0i32, 3)).unwrap();
        g.close_all_input_streams().unwrap();
        g.wait_until_done().unwrap();
        assert_eq!(out.values::<i64>(), vec![(ts(3), 3)]);
        let stats = g.stats();
        let mux = stats
            .iter()
            .find(|s| s.calculator == "MuxCalculator")
            .unwrap();
        assert_eq!(mux.dropped, 2);
    }

    #[test]
    fn a_selected_input_without_a_packet_gives_no_output() {
        let mut g = graph(MUX);
        let out = record(&mut g, "out");
        g.start_run(Default::default()).unwrap();
        g.add_packet("sel", at(1i32, 1)).unwrap();
        g.add_packet("sel", at(0i32, 2)).unwrap();
        g.add_packet("b", at(30i64, 3)).unwrap();
        g.add_packet("a", at(20i64, 2)).unwrap();
        g.finish().unwrap();
        // b has nothing at 1 (its next packet is at 3): timestamp 1 passes without output.
        assert_eq!(out.values::<i64>(), vec![(ts(2), 20)]);
    }

    #[test]
    fn a_select_value_naming_no_input_fails_the_run_at_its_timestamp() {
        let mut g = graph(MUX);
        g.start_run(Default::default()).unwrap();
        g.add_packet("sel", at(2i32, 7)).unwrap();
        let err = g.finish().unwrap_err().to_string();
        assert!(
            err.contains("at input timestamp 7")
                && err.contains("input SELECT: 2 names no input (there are INPUT:0..2)"),
            "{err}"
        );
    }

    #[test]
    fn demux_then_mux_restores_the_stream() {
        let mut g = graph(
            r#"
input_stream: [in]
executor: [{name: left, options: {num_threads: 1}}, {name: right, options: {num_threads: 1}}]
node:
  - calculator: RoundRobinDemuxCalculator
    input_stream: [in]
    output_stream: ["OUTPUT:0:l", "OUTPUT:1:r", "SELECT:which"]
  - {calculator: PassThroughCalculator, input_stream: [l], output_stream: [l2], executor: left}
  - {calculator: PassThroughCalculator, input_stream: [r], output_stream: [r2], executor: right}
  - calculator: MuxCalculator
    input_stream: ["INPUT:0:l2", "INPUT:1:r2", "SELECT:which"]
    output_stream: ["OUTPUT:out"]
"#,
        );
        let out = record(&mut g, "out");
        g.start_run(Default::default()).unwrap();
        for t in 0..200i64 {
            g.add_packet("in", at(t * 3, t)).unwrap();
        }
        g.finish().unwrap();
        let expected: Vec<_> = (0..200i64).map(|t| (ts(t), t * 3)).collect();
        assert_eq!(out.values::<i64>(), expected);
    }

    #[test]
    fn demux_then_mux_keeps_order_under_tight_queues_and_any_thread_layout() {
        for max_queue_size in [1, 2, 3, -1] {
            for copies in [2usize, 3] {
                for on_executors in [false, true] {
                    let executors: String = if on_executors {
                        let list: Vec<String> = (0..copies)
                            .map(|k| format!("{{name: e{k}, options: {{num_threads: 1}}}}"))
                            .collect();
                        format!("executor: [{}]\n", list.join(", "))
                    } else {
                        String::new()
                    };
                    let outs: Vec<String> = (0..copies)
                        .map(|k| format!("\"OUTPUT:{k}:d{k}\""))
                        .collect();
                    let ins: Vec<String> =
                        (0..copies).map(|k| format!("\"INPUT:{k}:p{k}\"")).collect();
                    let mut yaml = format!(
                        "input_stream: [in]\nnum_threads: 2\nmax_queue_size: {max_queue_size}\n{executors}node:\n  - {{calculator: RoundRobinDemuxCalculator, input_stream: [in], output_stream: [{}, \"SELECT:which\"]}}\n",
                        outs.join(", ")
                    );
                    for k in 0..copies {
                        let on = if on_executors {
                            format!(", executor: e{k}")
                        } else {
                            String::new()
                        };
                        yaml += &format!("  - {{calculator: PassThroughCalculator, input_stream: [d{k}], output_stream: [p{k}]{on}}}\n");
                    }
                    yaml += &format!(
                        "  - {{calculator: MuxCalculator, input_stream: [{}, \"SELECT:which\"], output_stream: [\"OUTPUT:out\"]}}\n",
                        ins.join(", ")
                    );
                    let mut g = graph(&yaml);
                    let out = record(&mut g, "out");
                    g.start_run(Default::default()).unwrap();
                    for t in 0..300i64 {
                        g.add_packet("in", at(t, t)).unwrap();
                    }
                    g.finish().unwrap();
                    let expected: Vec<_> = (0..300i64).map(|t| (ts(t), t)).collect();
                    assert_eq!(
                        out.values::<i64>(),
                        expected,
                        "max_queue_size {max_queue_size}, {copies} copies, executors {on_executors}"
                    );
                }
            }
        }
    }
}
