//! ImageTransformationCalculator shrinking RGB frames to 320x240 (the box-tracking
//! subgraph's downscale), against OpenCV's `resize` with INTER_AREA (what MediaPipe's
//! calculator uses) and INTER_LINEAR on the same frames, one thread.
//!
//! ```text
//! cargo bench -p mediagraph-calculators --bench image_transformation
//! ```
//!
//! Per input size: ms per frame (best of 5 rounds of 200 frames) of the calculator in a
//! one-node graph (its `process` time, the framework's per-node counter) and of the two
//! OpenCV calls alone, and the ratio of INTER_AREA to the calculator.

use std::time::Instant;

use mediagraph_calculators::image::{ImageFormat, ImageFrame};
use mediagraph_framework::{Graph, Packet, Timestamp};
use opencv::core::{Mat, Scalar, Size, CV_8UC3};
use opencv::imgproc;

const FRAMES: usize = 200;
const ROUNDS: usize = 5;

const GRAPH: &str = "input_stream: in\nnode:\n  - calculator: ImageTransformationCalculator\n    name: downscale\n    input_stream: IMAGE:in\n    output_stream: IMAGE:out\n    options: {output_width: 320, output_height: 240, scale_mode: STRETCH}\n";

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn noise(w: i32, h: i32) -> Res<Mat> {
    let mut m = Mat::new_rows_cols_with_default(h, w, CV_8UC3, Scalar::all(0.0))?;
    opencv::core::randu(&mut m, &Scalar::all(0.0), &Scalar::all(255.0))?;
    Ok(m)
}

/// Best mean ms per frame of `f` over the rounds.
fn best_ms(mut f: impl FnMut() -> Res<()>) -> Res<f64> {
    let mut best = f64::INFINITY;
    for _ in 0..ROUNDS {
        let t = Instant::now();
        for _ in 0..FRAMES {
            f()?;
        }
        best = best.min(t.elapsed().as_secs_f64() * 1000.0 / FRAMES as f64);
    }
    Ok(best)
}

/// The calculator's mean `process` time per frame (ms), best of the rounds.
fn calculator_ms(frame: &ImageFrame) -> Res<f64> {
    let mut best = f64::INFINITY;
    for _ in 0..ROUNDS {
        let mut graph = Graph::from_yaml_str(GRAPH)?;
        graph.start_run(Default::default())?;
        for i in 0..FRAMES as i64 {
            graph.add_packet("in", Packet::new(frame.clone()).at(Timestamp::new(i)))?;
        }
        graph.finish()?;
        let stats = graph.stats();
        let node = stats
            .iter()
            .find(|s| s.name == "downscale")
            .ok_or("no stats for the downscale node")?;
        best = best.min(node.process_time.as_secs_f64() * 1000.0 / node.invocations as f64);
    }
    Ok(best)
}

fn main() -> Res<()> {
    opencv::core::set_num_threads(1)?;
    println!("| input | calculator (ms) | OpenCV INTER_AREA (ms) | OpenCV INTER_LINEAR (ms) | INTER_AREA / calculator |");
    println!("|---|---|---|---|---|");
    let to = Size::new(320, 240);
    for (w, h) in [
        (640, 480),
        (768, 576),
        (640, 272),
        (1280, 720),
        (1920, 1080),
    ] {
        let mat = noise(w, h)?;
        let frame = ImageFrame::from_mat(&mat, ImageFormat::Srgb)?;
        let ours = calculator_ms(&frame)?;
        let mut dst = Mat::default();
        let mut opencv =
            |inter| best_ms(|| Ok(imgproc::resize(&mat, &mut dst, to, 0.0, 0.0, inter)?));
        let area = opencv(imgproc::INTER_AREA)?;
        let linear = opencv(imgproc::INTER_LINEAR)?;
        println!(
            "| {w}x{h} | {ours:.3} | {area:.3} | {linear:.3} | {:.1}x |",
            area / ours
        );
    }
    Ok(())
}
